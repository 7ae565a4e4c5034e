FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY . .
# The worker's Temporal build id (docs/upgrading.md); the image has no .git to derive it from:
# docker compose build --build-arg WARMPOOL_BUILD_ID=$(git rev-parse --short=12 HEAD)
ARG WARMPOOL_BUILD_ID=
ENV WARMPOOL_BUILD_ID=${WARMPOOL_BUILD_ID}
USER node
CMD ["npm", "run", "worker"]
