// The vault's full-text search index, encrypted at rest (format in search-index.ts).
export {
  searchIndex, SearchError, SEARCH_FORMAT, DEFAULT_FLUSH_EVERY, MAX_CHUNKS,
  type SearchIndex, type SearchIndexInit, type SearchKeys, type SearchOptions, type SearchStats
} from './search-index.ts'
export { extractSearchText, htmlToText, MAX_BODY_CHARS } from './text.ts'
export { queryTerms, documentTerms, STOPWORDS, type SearchText, type SearchField } from './terms.ts'
