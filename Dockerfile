# An smtorp node: Node 24 and Debian's tor, which the node starts itself (tor mode "own").
# Build from the repository root: docker build -t smtorp-node:dev .
FROM node:24-bookworm-slim

# tor: the node runs it as a child process; no tor service is started in the image.
# ca-certificates: for the legacy relay's TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tor ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. Dev dependencies are
# needed: the node runs from TypeScript with tsx. classic-level ships a prebuilt binary
# for linux-x64 glibc, so no compiler is needed.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && npm cache clean --force

# Only what the node runs; the host's node_modules and data never enter the image.
COPY tsconfig.json ./
COPY protocol ./protocol
COPY node ./node
COPY ui ./ui

# /tor/*: for the variant in docker-compose.yml where this image runs a separate tor; named
# volumes mounted there take the owner from the image, and tor runs as `node`.
RUN mkdir -p /data /tor/data /tor/auth && chown -R node:node /data /tor
USER node
VOLUME /data
# 2525 submission, 8025 web UI. Published to 127.0.0.1 only, see docker-compose.yml.
EXPOSE 2525 8025

CMD ["npx", "tsx", "node/cli/main.ts", "run", "--data", "/data", "--submission-host", "0.0.0.0", "--ui-host", "0.0.0.0"]
