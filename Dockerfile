# The pool's image: the worker by default; the API, migrations and the operator CLI run from it
# with another command (docker-compose.yml). Two stages: the first compiles the TypeScript and
# bundles the workflows (npm run build → dist/, dev dependencies there only); the second ships
# dist/ and the production dependencies, and runs `node dist/…` as the unprivileged user `node`.
# Only the sources are copied (never `COPY . .`); .dockerignore keeps secrets out of the context.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY contracts contracts
COPY lib lib
COPY workflows workflows
COPY activities activities
COPY workers workers
COPY api api
COPY scripts scripts
COPY migrations migrations
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist dist
# The worker's Temporal build id (docs/upgrading.md); the image has no .git to derive it from:
# docker compose build --build-arg WARMPOOL_BUILD_ID=$(git rev-parse --short=12 HEAD)
ARG WARMPOOL_BUILD_ID=
ENV WARMPOOL_BUILD_ID=${WARMPOOL_BUILD_ID}
USER node
CMD ["node", "dist/workers/main.js"]
