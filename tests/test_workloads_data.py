"""Benchmark data: generated tasks (seeded, no network) and the Tiny Shakespeare loader."""

from __future__ import annotations

import functools
import hashlib
import http.server
import random
import socket
import threading

import pytest

torch = pytest.importorskip("torch")

from greentrack.errors import GreentrackError  # noqa: E402
from greentrack.workloads import data as D  # noqa: E402

# ---------------------------------------------------------------------------------- ListOps


def test_listops_rules():
    assert D.listops_eval(("[MAX", [4, ("[MIN", [2, 3]), 1])) == 4
    assert D.listops_eval(("[MED", [1, 5, 8, 9, 2])) == 5
    assert D.listops_eval(("[MED", [1, 4])) == 2  # median 2.5 truncated, as in LRA
    assert D.listops_eval(("[SM", [7, 8, ("[MAX", [9, 0])])) == (7 + 8 + 9) % 10
    tree = ("[MAX", [4, ("[MIN", [2, 3]), 1])
    assert D.listops_tokens(tree) == ["[MAX", "4", "[MIN", "2", "3", "]", "1", "]"]


def test_listops_task_is_seeded_padded_and_consistent():
    a = D.listops(60, 20, 20, seed=3, max_len=32)
    b = D.listops(60, 20, 20, seed=3, max_len=32)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert a.train.x.shape == (60, 32) and a.pad_id == 0 and a.vocab_size == 16
    vocab = D.LISTOPS_VOCAB
    for row, label in zip(a.test.x[:10], a.test.y[:10], strict=True):
        toks = [vocab[i] for i in row.tolist() if i != 0]
        assert 8 <= len(toks) <= 32
        assert int(label) == _eval_tokens(toks)
    seqs = {tuple(r.tolist()) for r in torch.cat([a.train.x, a.val.x, a.test.x])}
    assert len(seqs) == 100  # no example repeats across splits


def _eval_tokens(toks):
    """An independent evaluator of the token sequence (a stack machine)."""
    stack: list[list] = []
    for t in toks:
        if t.startswith("["):
            stack.append([t])
        elif t == "]":
            op, *vals = stack.pop()
            v = {"[MIN": min, "[MAX": max, "[SM": lambda x: sum(x) % 10,
                 "[MED": _median_lra}[op](vals)  # fmt: skip
            if not stack:
                return v
            stack[-1].append(v)
        else:
            if not stack:
                return int(t)
            stack[-1].append(int(t))
    raise AssertionError("unbalanced")


def _median_lra(x):
    s = sorted(x)
    m = len(s) // 2
    return s[m] if len(s) % 2 else int((s[m - 1] + s[m]) / 2)


def test_listops_trees_respect_depth():
    rng = random.Random(0)

    def depth(t):
        return 0 if isinstance(t, int) else 1 + max(depth(c) for c in t[1])

    assert all(depth(D.listops_tree(rng, 1, 3, 4)) <= 3 for _ in range(200))


# --------------------------------------------------------------------------- char LM, shapes


def test_corpus_ships_with_the_package():
    text = D.corpus_text()
    assert 4000 < len(text) < 20000 and "Shall I compare thee" in text


def test_char_lm_targets_are_shifted_inputs_and_test_text_is_held_out():
    t = D.char_lm(32, n_train=50)
    assert t.train.x.shape == (50, 32) and t.kind == "lm"
    assert torch.equal(t.train.x[:, 1:], t.train.y[:, :-1])
    text = D.corpus_text()
    chars = t.meta["chars"]
    first_test = "".join(chars[i] for i in t.test.x[0].tolist())
    assert text.find(first_test) >= int(len(text) * 0.9) - 1


def test_char_lm_refuses_text_too_short():
    with pytest.raises(D.DatasetError, match="too short"):
        D.char_lm(64, text="abc" * 20)


def test_shapes_task():
    t = D.shapes(100, 20, 30, seed=1)
    assert t.train.x.shape == (100, 16, 16) and t.patch_dim == 16 and t.seq_len == 16
    assert set(t.train.y.tolist()) <= set(range(10))
    assert D.flatten_patches(t.test.x).shape == (30, 256)
    assert torch.equal(D.shapes(100, 20, 30, seed=1).val.x, t.val.x)
    assert not torch.equal(D.shapes(100, 20, 30, seed=2).val.x, t.val.x)


# -------------------------------------------------------------------------- Tiny Shakespeare

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
SHA = hashlib.sha256(TEXT.encode()).hexdigest()


def test_tiny_shakespeare_from_a_local_cached_file(tmp_path):
    (tmp_path / "tinyshakespeare.txt").write_text(TEXT, encoding="utf-8")
    assert D.load_tiny_shakespeare(tmp_path, sha256=SHA, url="http://127.0.0.1:9/") == TEXT


def test_tiny_shakespeare_refuses_a_cached_file_with_the_wrong_checksum(tmp_path):
    (tmp_path / "tinyshakespeare.txt").write_text("tampered", encoding="utf-8")
    with pytest.raises(D.DatasetError, match="delete it") as e:
        D.load_tiny_shakespeare(tmp_path, sha256=SHA)
    assert isinstance(e.value, GreentrackError) and "\n" not in str(e.value)


def test_default_checksum_is_the_published_one():
    assert D.TINY_SHAKESPEARE_SHA256 == (
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    )


@pytest.fixture
def local_server(tmp_path):
    """An http.server on 127.0.0.1 serving tmp_path/www (never the internet)."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "input.txt").write_text(TEXT, encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_tiny_shakespeare_download_is_checked_and_cached(tmp_path, local_server):
    cache = tmp_path / "cache"
    url = f"{local_server}/input.txt"
    assert D.load_tiny_shakespeare(cache, url=url, sha256=SHA) == TEXT
    assert (cache / "tinyshakespeare.txt").read_text(encoding="utf-8") == TEXT
    # second call: from the cache (a dead URL proves no download happens)
    assert D.load_tiny_shakespeare(cache, url="http://127.0.0.1:9/x", sha256=SHA) == TEXT


def test_tiny_shakespeare_download_with_wrong_checksum_is_refused(tmp_path, local_server):
    cache = tmp_path / "cache"
    with pytest.raises(D.DatasetError, match="SHA-256"):
        D.load_tiny_shakespeare(cache, url=f"{local_server}/input.txt", sha256="0" * 64)
    assert not (cache / "tinyshakespeare.txt").exists()
    assert not list(cache.iterdir())  # no partial file left behind


def test_tiny_shakespeare_unreachable_server_is_a_one_line_error(tmp_path, local_server):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(D.DatasetError, match="could not download") as e:
        D.load_tiny_shakespeare(tmp_path, url=f"http://127.0.0.1:{port}/x", sha256=SHA,
                                timeout_s=2)  # fmt: skip
    assert "\n" not in str(e.value)
    with pytest.raises(D.DatasetError, match="could not download"):  # 404
        D.load_tiny_shakespeare(tmp_path, url=f"{local_server}/missing.txt", sha256=SHA)


def test_tiny_shakespeare_default_cache_is_under_greentrack_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENTRACK_HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tinyshakespeare.txt").write_text(TEXT, encoding="utf-8")
    assert D.load_tiny_shakespeare(sha256=SHA) == TEXT
