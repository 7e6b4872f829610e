"""`batch_forge serve` end to end, over loopback, with the official `openai` client and raw HTTP.

Runs on the real SmolLM2-135M-Instruct when models/smollm2-135m-instruct.safetensors is present
(scripts/fetch_model.sh), else on a small exported model with a byte-level tokenizer and a ChatML
template. Checked:

- completions and chat completions, streaming and not, through the openai client; greedy output
  (text and token ids) equals `batch_forge generate --json` on the same prompt;
- 64 concurrent streaming clients: each gets exactly what the same request gets alone (greedy and
  seeded sampling), and afterwards no KV page is held but the prefix cache's;
- every class of bad input (401, 413, malformed JSON, wrong type, out of range, unknown model,
  prompt or max_tokens over the limits, unknown route, wrong method, a client that disconnects)
  answered while another stream runs, which then completes unchanged; 429 from a full queue;
- SIGTERM during a stream: the stream completes and the process exits 0.
"""

import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jax
import openai
import pytest

SOURCE = Path(os.environ.get("BF_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BINARY = Path(os.environ.get("BF_BINARY_DIR", SOURCE / "build")) / "apps" / "batch_forge"
REAL_MODEL = Path(os.environ.get("BF_REAL_MODEL", SOURCE / "models" / "smollm2-135m-instruct.safetensors"))
sys.path.insert(0, str(SOURCE / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_generate import byte_tokenizer  # noqa: E402

KEY = "test-key-0123456789"
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
PROMPTS = [
    "The sky is",
    "Once upon a time, in a land far away,",
    "def fibonacci(n):",
    "List three prime numbers:",
    "The capital of France is",
    "A haiku about the sea:\n",
    "Water boils at",
    "In 1969, the first person to walk on the moon",
]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(path, long_tokens): the model, and a max_tokens that keeps a stream going for seconds."""
    if REAL_MODEL.exists():
        return REAL_MODEL, 120
    from batch_forge.export import export
    from batch_forge.families.transformer import TransformerConfig, init_transformer
    config = TransformerConfig(vocab_size=256, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                               hidden_dim=96, norm="rms", norm_eps=1e-5, mlp="swiglu", max_seq_len=8192)
    path = tmp_path_factory.mktemp("serve") / "tiny-chat.safetensors"
    export(init_transformer(config, jax.random.PRNGKey(11)), path, family="transformer", config=config.to_dict(),
           extra_metadata={"batch_forge.tokenizer": byte_tokenizer(),
                           "batch_forge.chat_template": CHATML,
                           "batch_forge.special_tokens": json.dumps({"bos": None, "eos": [], "add_bos": False})})
    return path, 6000


class Server:
    """A `batch_forge serve` process on a free port; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, model_path, *flags):
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([str(BINARY), "serve", "--model", str(model_path), "--port", "0", *map(str, flags)],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout], daemon=True)
        self.reader.start()
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=120)
            except queue.Empty:
                line = ""
            if not line:
                self.proc.kill()
                self.stderr.seek(0)
                raise AssertionError(f"no listening line from the server: {seen} {self.stderr.read()}")
            seen.append(line)
            if "listening on http://" in line:
                break
        self.url = line.strip().rsplit(" ", 1)[1]
        assert line.startswith("batch_forge serve: listening on http://127.0.0.1:")
        self.port = int(self.url.rsplit(":", 1)[1])
        self.model_id = Path(model_path).stem

    def client(self, key=KEY):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=300)

    def request(self, method, path, body=None, headers=None, key=KEY):
        """(status, headers, body text) of one request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = f"Bearer {key}"
        h.update(headers or {})
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        text = r.read().decode()
        conn.close()
        return r.status, dict(r.getheaders()), text

    def metrics(self):
        status, headers, text = self.request("GET", "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def stop(self, timeout=120):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(timeout=10)
        self.rest = "".join(self.lines.queue)
        return code


@pytest.fixture(scope="module")
def server(model):
    path, long_tokens = model
    # Two I/O threads: connections run on their strands in parallel (one is the default).
    s = Server(path, "--api-key", KEY, "--max-body", "64K", "--max-prompt-tokens", 200, "--max-tokens-limit",
               long_tokens, "--io-threads", 2)
    yield s
    assert s.stop() == 0


def generate_cli(model_path, prompt, max_tokens, *extra):
    done = subprocess.run([str(BINARY), "generate", "--model", str(model_path), "--prompt", prompt, "--max-tokens",
                           str(max_tokens), "--temperature", "0", "--json", *extra],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def stream_completion(server, prompt, max_tokens, started=None, **sampling):
    """Streams one completion with the openai client: (text, token ids, finish_reason)."""
    client = server.client()
    text, ids, finish = "", [], None
    stream = client.completions.create(model=server.model_id, prompt=prompt, max_tokens=max_tokens, stream=True,
                                       extra_body={"ignore_eos": True, "return_token_ids": True}, **sampling)
    for chunk in stream:
        choice = chunk.choices[0]
        text += choice.text
        ids += (choice.model_extra or {}).get("token_ids") or []
        if choice.finish_reason:
            finish = choice.finish_reason
        if started is not None and ids:
            started.set()
    return text, ids, finish


def completion(server, prompt, max_tokens, **sampling):
    r = server.client().completions.create(model=server.model_id, prompt=prompt, max_tokens=max_tokens,
                                           extra_body={"ignore_eos": True, "return_token_ids": True}, **sampling)
    choice = r.choices[0]
    return choice.text, choice.model_extra["token_ids"], choice.finish_reason


def test_health_and_models(server):
    assert server.request("GET", "/health", key=None)[:1] == (200,)
    models = server.client().models.list()
    assert [m.id for m in models.data] == [server.model_id]
    status, _, body = server.request("GET", f"/v1/models/{server.model_id}")
    assert status == 200 and json.loads(body)["id"] == server.model_id


def test_keep_alive_and_expect_continue(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for _ in range(3):  # one connection, several requests
        conn.request("POST", "/v1/completions", body=json.dumps({"prompt": "hi", "max_tokens": 2}), headers=headers)
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Connection") != "close"
        assert json.loads(r.read())["usage"]["completion_tokens"] == 2
    conn.close()

    # A client that waits for "100 Continue" before it sends the body (curl does past 1 MiB).
    body = json.dumps({"prompt": "hi", "max_tokens": 2}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert sock.recv(64).startswith(b"HTTP/1.1 200 OK")


def test_completions_greedy_equal_generate(server, model):
    path, _ = model
    for prompt in PROMPTS[:2]:
        want = generate_cli(path, prompt, 24, "--ignore-eos")
        r = server.client().completions.create(model=server.model_id, prompt=prompt, max_tokens=24, temperature=0,
                                               extra_body={"ignore_eos": True, "return_token_ids": True})
        choice = r.choices[0]
        assert choice.text == want["text"]
        assert choice.model_extra["token_ids"] == want["tokens"]
        assert choice.model_extra["prompt_token_ids"] == want["prompt_ids"]
        assert choice.finish_reason == "length"
        assert r.object == "text_completion" and r.model == server.model_id and r.id.startswith("cmpl-")
        assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (
            len(want["prompt_ids"]), 24, len(want["prompt_ids"]) + 24)
        text, ids, finish = stream_completion(server, prompt, 24, temperature=0)
        assert (text, ids, finish) == (want["text"], want["tokens"], "length")


def test_token_id_prompt_and_logprobs(server, model):
    path, _ = model
    want = generate_cli(path, PROMPTS[0], 8, "--ignore-eos")
    r = server.client().completions.create(model=server.model_id, prompt=want["prompt_ids"], max_tokens=8,
                                           temperature=0, logprobs=3, extra_body={"ignore_eos": True})
    choice = r.choices[0]
    assert choice.text == want["text"]
    assert len(choice.logprobs.tokens) == 8 and len(choice.logprobs.token_logprobs) == 8
    assert all(len(top) <= 3 for top in choice.logprobs.top_logprobs)
    # Greedy: each token is its step's most likely one, so it is among the alternatives and none is
    # more likely. (Alternatives are keyed by text: bytes that are no whole character share a key.)
    for token, lp, top in zip(choice.logprobs.tokens, choice.logprobs.token_logprobs, choice.logprobs.top_logprobs):
        assert lp <= 0 and token in top and all(v <= lp + 1e-6 for v in top.values())


def test_chat_greedy_equal_generate(server, model):
    path, _ = model
    question = "What is the capital of France?"
    want = generate_cli(path, question, 32, "--chat")
    client = server.client()
    r = client.chat.completions.create(model=server.model_id, messages=[{"role": "user", "content": question}],
                                       max_tokens=32, temperature=0, extra_body={"return_token_ids": True})
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == want["text"]
    assert choice.model_extra["token_ids"] == want["tokens"]
    assert choice.finish_reason == want["finish_reason"]
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.usage.prompt_tokens == len(want["prompt_ids"]) and r.usage.completion_tokens == len(want["tokens"])

    chunks = list(client.chat.completions.create(
        model=server.model_id, messages=[{"role": "user", "content": question}], max_tokens=32, temperature=0,
        stream=True, stream_options={"include_usage": True}, logprobs=True, top_logprobs=2))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want["text"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == want["finish_reason"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(want["tokens"])
    logprobs = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert len(logprobs) == len(want["tokens"]) and all(len(t.top_logprobs) == 2 for t in logprobs)


def test_chat_without_max_tokens(server, model):
    """Runs to the end of the turn or to --max-tokens-limit (the real model's context does not fit
    the default KV pool: the reply must not be refused for that)."""
    _, limit = model
    r = server.client().chat.completions.create(
        model=server.model_id, messages=[{"role": "system", "content": "Answer in one word."},
                                         {"role": "user", "content": "What color is the sky?"}], temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens == limit if choice.finish_reason == "length" else r.usage.completion_tokens < limit


def test_64_concurrent_streams_match_alone(server):
    # 8 prompts greedy, 4 of them also sampled with a seed: 12 requests, each run alone first.
    configs = [(p, {"temperature": 0}) for p in PROMPTS]
    configs += [(p, {"temperature": 0.9, "top_p": 0.95, "seed": 100 + i}) for i, p in enumerate(PROMPTS[:4])]
    alone = [stream_completion(server, p, 16, **s) for p, s in configs]
    assert all(len(ids) == 16 and finish == "length" for _, ids, finish in alone)

    before = server.metrics()
    results = [None] * 64
    errors = []

    def client(i):
        try:
            prompt, sampling = configs[i % len(configs)]
            results[i] = stream_completion(server, prompt, 16, **sampling)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors
    for i, got in enumerate(results):
        assert got == alone[i % len(configs)], i

    after = server.metrics()
    assert after['batch_forge_requests_total{outcome="finished"}'] - before['batch_forge_requests_total{outcome="finished"}'] == 64
    assert after["batch_forge_running_sequences"] == 0 and after["batch_forge_queue_depth"] == 0
    assert after["batch_forge_kv_pages_used"] == after["batch_forge_kv_pages_cached"]
    assert after["batch_forge_kv_pages_used"] + after["batch_forge_kv_pages_free"] == after["batch_forge_kv_pages_total"]
    assert after["batch_forge_generated_tokens_total"] - before["batch_forge_generated_tokens_total"] == 64 * 16
    assert after["batch_forge_time_to_first_token_seconds_count"] >= 64
    # Identical prompts shared their cached pages.
    assert after["batch_forge_prefix_cache_hit_tokens_total"] >= before["batch_forge_prefix_cache_hit_tokens_total"]


def assert_error(response, status, param=None, code=None, says=None):
    got, _, body = response
    assert got == status, body
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == ("server_error" if status >= 500 else
                             "rate_limit_error" if status == 429 else "invalid_request_error")
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    if says is not None:
        assert says in error["message"], error
    return error


def open_stream(port, body, key=KEY):
    """A raw socket that has sent a streaming request and read its first event."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Authorization: Bearer {key}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    received = b""
    while b"data: " not in received:
        part = sock.recv(4096)
        assert part, received
        received += part
    assert received.startswith(b"HTTP/1.1 200 OK")
    return sock


def wait_for(predicate, what, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_bad_input_while_another_stream_runs(server, model):
    _, long_tokens = model
    prompt = PROMPTS[1]
    alone = completion(server, prompt, long_tokens, temperature=0)

    started = threading.Event()
    background = {}
    thread = threading.Thread(target=lambda: background.update(
        result=stream_completion(server, prompt, long_tokens, started=started, temperature=0)))
    thread.start()
    assert started.wait(120)
    m0 = server.metrics()

    ok = {"model": server.model_id, "prompt": "hi", "max_tokens": 2}
    # Authentication: no key, a wrong key (same length too); /health stays open.
    status, headers, _ = server.request("POST", "/v1/completions", ok, key=None)
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert_error(server.request("POST", "/v1/completions", ok, key=None), 401, code="invalid_api_key")
    assert_error(server.request("POST", "/v1/completions", ok, key="x" * len(KEY)), 401, code="invalid_api_key")
    assert_error(server.request("GET", "/metrics", key="wrong"), 401)
    with pytest.raises(openai.AuthenticationError):
        server.client(key="wrong").completions.create(model=server.model_id, prompt="hi", max_tokens=2)
    assert server.request("GET", "/health", key=None)[0] == 200
    # Body over --max-body (64K).
    assert_error(server.request("POST", "/v1/completions", {"prompt": "x" * 70000}), 413, code="request_too_large",
                 says="at most 65536 (--max-body)")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)  # no Content-Length: chunked
    conn.request("POST", "/v1/completions", body=iter([b"x" * 40000] * 2), encode_chunked=True,
                 headers={"Authorization": f"Bearer {KEY}", "Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 413 and "larger than this server's limit of 65536 bytes" in r.read().decode()
    conn.close()
    # Malformed JSON, wrong types, out-of-range values.
    assert_error(server.request("POST", "/v1/completions", '{"prompt": "hi",'), 400, code="invalid_json")
    assert_error(server.request("POST", "/v1/completions", "[]"), 400, code="invalid_json")
    assert_error(server.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": "ten"}), 400,
                 param="max_tokens", code="invalid_type")
    assert_error(server.request("POST", "/v1/chat/completions", {"messages": "hi"}), 400, param="messages")
    assert_error(server.request("POST", "/v1/completions", {"prompt": "hi", "temperature": -0.5}), 400,
                 param="temperature", says="temperature is -0.5 but must be a finite number >= 0")
    assert_error(server.request("POST", "/v1/completions", {"prompt": "hi", "top_p": 2}), 400, param="top_p",
                 says="top_p is 2 but must be in (0, 1]")
    assert_error(server.request("POST", "/v1/completions", {"prompt": [1, 10**9]}), 400, param="prompt[1]",
                 says="outside the vocabulary")
    assert_error(server.request("POST", "/v1/completions", {"prompt": "hi", "n": 2}), 400, param="n")
    with pytest.raises(openai.BadRequestError):
        server.client().completions.create(model=server.model_id, prompt="hi", max_tokens=2, temperature=-1)
    # Unknown model.
    assert_error(server.request("POST", "/v1/completions", {**ok, "model": "gpt-4"}), 404, param="model",
                 code="model_not_found")
    with pytest.raises(openai.NotFoundError):
        server.client().chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    # Limits: --max-prompt-tokens 200, --max-tokens-limit long_tokens.
    assert_error(server.request("POST", "/v1/completions", {"prompt": "word " * 300}), 400, param="prompt",
                 code="context_length_exceeded", says="at most 200 (--max-prompt-tokens)")
    assert_error(server.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": long_tokens + 1}), 400,
                 param="max_tokens",
                 says=f"'max_tokens' is {long_tokens + 1} but this server allows at most {long_tokens} (--max-tokens-limit)")
    # Routes and methods.
    assert_error(server.request("GET", "/v1/nothing"), 404)
    status, headers, _ = server.request("GET", "/v1/completions")
    assert status == 405 and headers["Allow"] == "POST"

    # Clients that go away: mid-stream, and while waiting for a non-streaming answer.
    sock = open_stream(server.port, {"prompt": "abc", "max_tokens": long_tokens, "stream": True, "ignore_eos": True})
    sock.close()
    wait_for(lambda: server.metrics()['batch_forge_requests_total{outcome="cancelled"}']
             == m0['batch_forge_requests_total{outcome="cancelled"}'] + 1, "the streaming request to be cancelled")
    quiet = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    data = json.dumps({"prompt": "abc", "max_tokens": long_tokens, "ignore_eos": True}).encode()
    quiet.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + f"Authorization: Bearer {KEY}\r\n".encode()
                  + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    wait_for(lambda: server.metrics()["batch_forge_requests_submitted_total"]
             == m0["batch_forge_requests_submitted_total"] + 2, "the second request to be submitted")
    quiet.close()
    wait_for(lambda: server.metrics()['batch_forge_requests_total{outcome="cancelled"}']
             == m0['batch_forge_requests_total{outcome="cancelled"}'] + 2, "the waiting request to be cancelled")

    thread.join(timeout=600)
    assert background["result"] == alone  # the stream that ran through all of it is unchanged
    m1 = server.metrics()
    assert m1["batch_forge_running_sequences"] == 0 and m1["batch_forge_queue_depth"] == 0
    assert m1["batch_forge_kv_pages_used"] == m1["batch_forge_kv_pages_cached"]  # the cancelled ones' pages are back
    assert m1['batch_forge_http_responses_total{code="401"}'] >= 4
    assert m1['batch_forge_http_responses_total{code="413"}'] >= 1


def test_full_queue_gets_429(model):
    path, long_tokens = model
    s = Server(path, "--api-key", KEY, "--max-queue", 1, "--max-running", 1)
    try:
        alone = completion(s, PROMPTS[2], long_tokens, temperature=0)
        started = threading.Event()
        background = {}
        thread = threading.Thread(target=lambda: background.update(
            result=stream_completion(s, PROMPTS[2], long_tokens, started=started, temperature=0)))
        thread.start()
        assert started.wait(120)  # running: it holds the one running slot

        statuses = [None] * 8

        def flood(i):
            statuses[i] = s.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 2})

        flooders = [threading.Thread(target=flood, args=(i,)) for i in range(8)]
        for t in flooders:
            t.start()
        for t in flooders:
            t.join(timeout=600)
        codes = sorted(r[0] for r in statuses)
        assert codes.count(200) >= 1 and codes.count(429) >= 1 and set(codes) <= {200, 429}, codes
        for r in statuses:
            if r[0] == 429:
                assert_error(r, 429, code="queue_full", says="queue is full")
        thread.join(timeout=600)
        assert background["result"] == alone
        m = s.metrics()
        assert m['batch_forge_requests_total{outcome="rejected"}'] == codes.count(429)
        assert m["batch_forge_kv_pages_used"] == m["batch_forge_kv_pages_cached"]
    finally:
        assert s.stop() == 0


def test_sigterm_during_stream_exits_0(model):
    path, long_tokens = model
    s = Server(path, "--api-key", KEY)
    tokens = long_tokens // 2
    started = threading.Event()
    background = {}
    thread = threading.Thread(target=lambda: background.update(
        result=stream_completion(s, PROMPTS[0], tokens, started=started, temperature=0)))
    thread.start()
    assert started.wait(120)
    assert s.stop() == 0
    thread.join(timeout=60)
    text, ids, finish = background["result"]
    assert len(ids) == tokens and finish == "length"  # the running request was let finish
    assert "batch_forge serve: stopped" in s.rest
