// A binary min-heap of (time, key): when each delivery group of the queue is next due.
// Items are never updated in place; stale ones are pushed aside when popped (the caller
// checks an item against the queue's state), which keeps every operation O(log n).
export interface DueItem {
  at: number
  entryId: string
  destination: string
}

export class DueHeap {
  private readonly items: DueItem[] = []

  get size (): number { return this.items.length }

  peek (): DueItem | undefined { return this.items[0] }

  push (item: DueItem): void {
    const items = this.items
    items.push(item)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (items[parent]!.at <= item.at) break
      items[i] = items[parent]!
      i = parent
    }
    items[i] = item
  }

  pop (): DueItem | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= items.length) break
      const right = left + 1
      const child = right < items.length && items[right]!.at < items[left]!.at ? right : left
      if (items[child]!.at >= last.at) break
      items[i] = items[child]!
      i = child
    }
    items[i] = last
    return top
  }
}
