# The demo app of the compose stack: this checkout, installed with the newest tested SDKs
# (the Python and the pins the CI tests with: constraints/newest.txt).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY constraints ./constraints
COPY semconv ./semconv
COPY src ./src
RUN pip install --no-cache-dir '.[all]' -c constraints/newest.txt
# Run the demo again and again, so the dashboards have something to show.
CMD ["sh", "-c", "while true; do otel-llm-audit demo; sleep \"${DEMO_INTERVAL_SECONDS:-60}\"; done"]
