"""Start `engram serve` and talk to it with the official openai client (streaming, sessions).

Run: python examples/serve_and_openai_client.py
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time

import httpx
import openai


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "engram_sdk.cli.main", "serve", "--port", str(port)]
        cmd += ["--store", f"lmdb://{tmp}/mem", "--api-key", "sk-example=me"]
        server = subprocess.Popen(cmd)
        base = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            auth = {"Authorization": "Bearer sk-example"}
            httpx.post(
                base + "/v1/memory/add",
                json={"text": "The vault code of Heron is QX-7731-B.", "source": "heron.md"},
                headers=auth,
            )
            client = openai.OpenAI(base_url=base + "/v1", api_key="sk-example")
            stream = client.chat.completions.create(
                model="smollm2-135m-instruct",
                messages=[{"role": "user", "content": "What is the vault code of Heron?"}],
                max_tokens=32,
                temperature=0,
                stream=True,
                extra_headers={"X-Session-ID": "example"},
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    print(chunk.choices[0].delta.content, end="", flush=True)
            print()
            print(httpx.get(base + "/v1/sessions/example", headers=auth).json()["messages"])
            # a raw prompt continued (no memory, no session), streamed as it is generated
            for part in client.completions.create(
                model="smollm2-135m-instruct",
                prompt="The three primary colours are",
                max_tokens=12,
                stream=True,
            ):
                print(part.choices[0].text if part.choices else "", end="", flush=True)
            print()
        finally:
            server.terminate()  # replies still streaming get --shutdown-timeout (5 s)
            server.wait()


if __name__ == "__main__":
    main()
