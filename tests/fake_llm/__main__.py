"""Run the fake LLM by hand: `python -m tests.fake_llm --port 8999`, then point Weft at it."""

import argparse
import time

from .server import DEFAULT_API_KEY, FakeLLM


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_llm",
        description="A loopback fake of the OpenAI and Anthropic APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--first-token-latency", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--latency-per-token", type=float, default=0.0, metavar="SECONDS")
    options = parser.parse_args(argv)
    fake = FakeLLM(
        host=options.host,
        port=options.port,
        api_key=options.api_key,
        embedding_dim=options.embedding_dim,
    )
    fake.first_token_latency = options.first_token_latency
    fake.latency_per_token = options.latency_per_token
    with fake:
        print(f"fake LLM listening; API key {fake.api_key}", flush=True)
        print(f"  OpenAI base URL:    {fake.openai_base_url}", flush=True)
        print(f"  Anthropic base URL: {fake.anthropic_base_url}", flush=True)
        print(f"  models: {', '.join(fake.models)}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping", flush=True)


if __name__ == "__main__":
    main()
