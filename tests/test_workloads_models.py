"""The reference efficient models: shapes, causality, real skipping, real sparsity, tolerances."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from greentrack.workloads import data as D  # noqa: E402
from greentrack.workloads.attention import (  # noqa: E402
    ABCAttention,
    AttentionConfig,
    RandomFeatureAttention,
    efficient_transformer,
)
from greentrack.workloads.compression import (  # noqa: E402
    CSRLinear,
    Int8Linear,
    distillation_loss,
    magnitude_prune,
    quantize_int8,
    sparsity,
    to_sparse_csr,
)
from greentrack.workloads.dfa import MLP, DFATrainer, MLPConfig  # noqa: E402
from greentrack.workloads.early_exit import (  # noqa: E402
    EarlyExitConfig,
    EarlyExitTransformer,
    calibrate,
)
from greentrack.workloads.flops import count_flops  # noqa: E402
from greentrack.workloads.moe import MoEConfig, MoEFFN, moe_transformer  # noqa: E402
from greentrack.workloads.sparse_ffn import SparseFFN, sparse_ffn_transformer  # noqa: E402
from greentrack.workloads.training import accuracy, fit  # noqa: E402
from greentrack.workloads.transformer import Transformer, TransformerConfig  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(old)


def lm_config(**kw):
    base = dict(vocab_size=20, block_size=24, n_layer=2, n_head=2, n_embd=16)
    base.update(kw)
    return TransformerConfig(**base)


def cls_config(**kw):
    base = dict(patch_dim=16, block_size=16, n_layer=3, n_head=2, n_embd=16, causal=False,
                n_classes=10)  # fmt: skip
    base.update(kw)
    return TransformerConfig(**base)


LM_BUILDERS = {
    "softmax": lambda c: Transformer(c),
    "rfa": lambda c: efficient_transformer(c, AttentionConfig(kind="rfa", n_features=8)),
    "rfa_trig": lambda c: efficient_transformer(
        c, AttentionConfig(kind="rfa", n_features=8, feature_map="trig")
    ),
    "abc": lambda c: efficient_transformer(c, AttentionConfig(kind="abc", n_slots=4)),
    "moe": lambda c: moe_transformer(c, MoEConfig(n_experts=3, top_k=2)),
    "sparse_ffn": lambda c: sparse_ffn_transformer(c),
}


# ----------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", sorted(LM_BUILDERS))
def test_decoder_shapes_and_loss(name):
    model = LM_BUILDERS[name](lm_config())
    x = torch.randint(0, 20, (3, 24))
    logits, loss = model(x, x)
    assert logits.shape == (3, 24, 20)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    logits, loss = model(x)
    assert loss is None


@pytest.mark.parametrize("kind", ["softmax", "rfa", "abc"])
def test_encoder_classifier_shapes_with_padding(kind):
    cfg = TransformerConfig(vocab_size=16, block_size=12, n_layer=1, n_head=2, n_embd=16,
                            causal=False, n_classes=10, pad_id=0)  # fmt: skip
    model = efficient_transformer(cfg, AttentionConfig(kind=kind, n_features=8, n_slots=4))
    x = torch.randint(1, 16, (4, 12))
    x[:, 8:] = 0
    logits, loss = model(x, torch.tensor([1, 2, 3, 4]))
    assert logits.shape == (4, 10) and torch.isfinite(loss)


def test_too_long_sequence_is_an_assertion_with_a_message():
    with pytest.raises(AssertionError, match="block_size"):
        Transformer(lm_config())(torch.zeros(1, 30, dtype=torch.long))


# -------------------------------------------------------------------------------- causality


@pytest.mark.parametrize("name", ["softmax", "rfa", "rfa_trig", "abc", "moe", "sparse_ffn"])
def test_decoder_does_not_see_the_future(name):
    model = LM_BUILDERS[name](lm_config()).eval()
    x = torch.randint(0, 20, (2, 24))
    y = x.clone()
    y[:, 12:] = (y[:, 12:] + 7) % 20  # change only the future
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-5), "past logits moved with the future"
    assert not torch.allclose(a[:, 12:], b[:, 12:], atol=1e-5), "the test must be able to fail"


def test_rfa_causal_matches_prefix_computation():
    """Position t of the causal mode equals the non-causal mode run on the prefix [0..t]."""
    cfg = lm_config(n_embd=16, n_head=2)
    att = RandomFeatureAttention(cfg, AttentionConfig(n_features=8)).eval()
    enc = RandomFeatureAttention(lm_config(causal=False), AttentionConfig(n_features=8)).eval()
    enc.load_state_dict(att.state_dict())
    x = torch.randn(1, 10, 16)
    with torch.no_grad():
        full = att(x)
        for t in (0, 4, 9):
            assert torch.allclose(full[:, t], enc(x[:, : t + 1])[:, t], atol=1e-4)


def test_rfa_approximates_softmax_attention_with_many_features():
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 1, 32, 8) * 0.5 for _ in range(3))
    exact = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, -1) @ v
    cfg = lm_config(n_embd=8, n_head=1, causal=False)
    att = RandomFeatureAttention(cfg, AttentionConfig(n_features=4096, redraw=False))
    fq = att.features(q, att.w, is_query=True)
    fk = att.features(k, att.w, is_query=False)
    approx = (fq @ (fk.transpose(-1, -2) @ v)) / (fq @ fk.sum(2, keepdim=True).transpose(-1, -2))
    assert (approx - exact).abs().max() < 0.1


def test_abc_memory_is_bounded_by_slots():
    cfg = lm_config(causal=False)
    att = ABCAttention(cfg, AttentionConfig(kind="abc", n_slots=3))
    flops_short = count_flops(att, torch.randn(1, 8, 16))
    flops_long = count_flops(att, torch.randn(1, 16, 16))
    assert flops_long == 2 * flops_short  # linear in length: no T × T term


# ------------------------------------------------------------------------------- early exit


def _rows_per_block(model, x):
    seen = [0] * len(model.blocks)
    hooks = [
        b.register_forward_hook(lambda m, inp, out, i=i: seen.__setitem__(i, seen[i] + len(out)))
        for i, b in enumerate(model.blocks)
    ]
    try:
        logits, layer = model.infer(x)
    finally:
        for h in hooks:
            h.remove()
    return seen, logits, layer


@pytest.mark.parametrize("measure", ["softmax", "margin", "saturation"])
def test_early_exit_really_skips_layers(measure):
    model = EarlyExitTransformer(cls_config(n_layer=4), EarlyExitConfig(measure=measure)).eval()
    x = torch.randn(12, 16, 16)
    model.ee.threshold = float("inf")  # nobody exits early
    seen, _, layer = _rows_per_block(model, x)
    assert seen == [12, 12, 12, 12] and layer.tolist() == [4] * 12
    model.ee.threshold = -2.0  # everybody exits after the first block
    seen, _, layer = _rows_per_block(model, x)
    assert seen == [12, 0, 0, 0] and layer.tolist() == [1] * 12
    # in between: block i runs exactly the examples that had not exited before it
    with torch.no_grad():
        logits_all, states = model.all_exits(x)
    from greentrack.workloads.early_exit import confidence

    conf = confidence(measure, logits_all[0], states[1], states[0])
    model.ee.threshold = float(conf.median())
    seen, logits, layer = _rows_per_block(model, x)
    assert seen == [int((layer > i).sum()) for i in range(4)]  # exit layer is 1-based
    assert 0 < seen[1] < 12
    for j in range(12):  # each answer is the answer of the exit it left at
        assert torch.allclose(logits[j], logits_all[layer[j] - 1, j], atol=1e-5)


def test_early_exit_min_layer():
    model = EarlyExitTransformer(cls_config(n_layer=3), EarlyExitConfig(min_layer=2)).eval()
    model.ee.threshold = -1.0
    seen, _, layer = _rows_per_block(model, torch.randn(5, 16, 16))
    assert seen == [5, 5, 0] and layer.tolist() == [2] * 5


def test_calibration_respects_the_tolerance_and_saves_layers():
    task = D.shapes(400, 300, 100, seed=1)
    model = EarlyExitTransformer(cls_config(n_layer=3, n_embd=32))
    fit(model, task.train, steps=120, batch_size=32, lr=3e-3)
    cal = calibrate(model, task.val.x, task.val.y, max_loss=0.02)
    assert cal.full_accuracy - cal.accuracy <= 0.02 + 1e-9
    assert 1.0 <= cal.mean_exit_layer <= 3.0
    assert model.ee.threshold == cal.threshold
    strict = calibrate(model, task.val.x, task.val.y, max_loss=0.0, risk="consistency")
    assert strict.disagreement == 0.0
    ltt = calibrate(model, task.val.x, task.val.y, max_loss=0.01, method="ltt")
    assert ltt.threshold == float("inf")  # 300 examples cannot certify 1 %: no early exits
    # against a weaker model it replaces, more examples may leave early; never below the bound
    weaker = calibrate(model, task.val.x, task.val.y, max_loss=0.02,
                       reference_accuracy=cal.full_accuracy - 0.1)  # fmt: skip
    assert weaker.accuracy >= cal.full_accuracy - 0.12 - 1e-9
    assert weaker.mean_exit_layer <= cal.mean_exit_layer
    assert weaker.reference_accuracy == pytest.approx(cal.full_accuracy - 0.1)


def test_early_exit_flops_drop_with_exits():
    model = EarlyExitTransformer(cls_config(n_layer=4)).eval()
    x = torch.randn(8, 16, 16)
    model.ee.threshold = float("inf")
    full = count_flops(lambda t: model.infer(t)[0], x)
    model.ee.threshold = -1.0
    early = count_flops(lambda t: model.infer(t)[0], x)
    assert early < full / 2


# -------------------------------------------------------------------------------------- MoE


def test_moe_routes_each_token_to_top_k_and_reports_active_params():
    cfg = lm_config(n_embd=16)
    ffn = MoEFFN(cfg, MoEConfig(n_experts=4, top_k=1, expert_mult=2))
    calls = []
    for e in ffn.experts:
        e.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    ffn.train()
    out = ffn(torch.randn(2, 8, 16))
    assert out.shape == (2, 8, 16)
    assert sum(calls) <= 16  # each token visits at most one expert (top-1)
    assert ffn.aux_loss is not None and ffn.aux_loss > 0
    per_expert = sum(p.numel() for p in ffn.experts[0].parameters())
    assert ffn.inactive_params() == 3 * per_expert
    total, active = moe_transformer(cfg, MoEConfig(n_experts=4)).param_counts()
    assert active < total


def test_moe_capacity_drops_overflow_tokens():
    ffn = MoEFFN(lm_config(), MoEConfig(n_experts=2, top_k=1, capacity_factor=0.5)).train()
    with torch.no_grad():
        ffn.router.weight.zero_()
        ffn.router.weight[0] = 1.0  # push every token to expert 0
    ffn(torch.ones(1, 8, 16))
    assert ffn.capacity(8) == 2
    assert ffn.last_drop_fraction == pytest.approx(6 / 8)


def test_moe_balancing_loss_is_minimal_when_balanced():
    ffn = MoEFFN(lm_config(), MoEConfig(n_experts=2, aux_loss_weight=1.0)).train()
    with torch.no_grad():
        ffn.router.weight.zero_()
    ffn(torch.randn(1, 8, 16))  # uniform router probabilities
    # f sums to 1 and P_e = 1/E, so E · Σ f_e P_e = 1 exactly
    assert ffn.aux_loss.item() == pytest.approx(1.0)


# -------------------------------------------------------------------------------- sparse FFN


def test_sparse_ffn_inference_reads_only_the_selected_rows():
    cfg = lm_config(n_embd=32, ffn_mult=4)
    ffn = SparseFFN(cfg).eval()
    x = torch.randn(2, 5, 32)
    xf = x.reshape(-1, 32)
    with torch.no_grad():
        reference = ffn.forward_masked(xf)
        selected = ffn.selected_units(xf)
        assert selected.shape == (10, ffn.n_blocks)
        unused = torch.ones(ffn.d_ff, dtype=torch.bool)
        unused[selected.flatten()] = False
        assert unused.any()
        ffn.w_in[unused] = float("nan")  # poison every row that no token selected
        ffn.w_out[unused] = float("nan")
        ffn.b_in[unused] = float("nan")
        out = ffn(x).reshape(-1, 32)
    assert torch.isfinite(out).all(), "inference touched an unselected row"
    assert torch.allclose(out, reference, atol=1e-5)
    assert torch.isnan(ffn.forward_masked(xf)).any()  # the dense path would have read them


def test_sparse_ffn_inference_is_cheaper_in_flops_and_trains_straight_through():
    cfg = lm_config(n_embd=64, ffn_mult=4)
    ffn = SparseFFN(cfg)
    dense = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Linear(256, 64))
    x = torch.randn(1, 4, 64)
    assert count_flops(ffn, x) < count_flops(dense, x) / 4
    ffn.train()
    ffn(x).sum().backward()
    assert ffn.ctrl_down.weight.grad is not None and ffn.ctrl_down.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------- compression


def test_int8_linear_is_within_the_rounding_bound():
    lin = torch.nn.Linear(64, 32)
    q = Int8Linear.from_float(lin)
    x = torch.randn(10, 64)
    with torch.no_grad():
        err = (q(x) - lin(x)).abs()  # (10, 32)
        # |W - s·Q| <= s/2 elementwise, so |Δy_j| <= s_j/2 · ‖x‖₁
        bound = 0.5 * q.scale[None, :] * x.abs().sum(1, keepdim=True) + 1e-5
    assert (err <= bound).all()
    assert q.qweight.dtype == torch.int8 and q.qweight.abs().max() <= 127


def test_quantized_model_within_stated_tolerance_of_float():
    """Stated tolerance: logits within 2 % of their range, and the same top-1 on >= 95 %."""
    model = Transformer(cls_config(n_embd=32)).eval()
    x = torch.randn(64, 16, 16)
    with torch.no_grad():
        ref = model(x)[0]
        assert quantize_int8(model) == 3 * 4 + 2  # 4 Linear per block, + patch embed + head
        got = model(x)[0]
    assert (got - ref).abs().max() <= 0.02 * (ref.max() - ref.min())
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.95


def test_magnitude_pruning_and_csr_give_the_same_answers():
    model = Transformer(cls_config()).eval()
    masks = magnitude_prune(model, 0.6)  # the patch embedding and the head stay dense
    pruned = sum(int((~m).sum()) for m in masks.masks.values())
    assert pruned / sum(m.numel() for m in masks.masks.values()) == pytest.approx(0.6, abs=0.01)
    before = sparsity(model)
    assert 0.5 < before < 0.6
    for p in model.parameters():  # a training step would refill zeros; apply() re-zeroes them
        p.data += 0.01
    masks.apply(model)
    assert sparsity(model) == pytest.approx(before)
    x = torch.randn(4, 16, 16)
    with torch.no_grad():
        dense = model(x)[0]
        n = to_sparse_csr(model)
        sparse = model(x)[0]
    assert n > 0 and any(isinstance(m, CSRLinear) for m in model.modules())
    assert torch.allclose(dense, sparse, atol=1e-5)


def test_distillation_loss_is_zero_for_a_perfect_copy_at_alpha_one():
    t = torch.randn(4, 10)
    y = torch.randint(0, 10, (4,))
    assert float(distillation_loss(t, t, y, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(torch.zeros(4, 10), t, y, alpha=1.0)) > 0


# ------------------------------------------------------------------------------------- DFA


def test_dfa_learns_well_above_chance():
    task = D.shapes(1500, 10, 300, seed=2)
    train = D.Split(D.flatten_patches(task.train.x), task.train.y)
    test_x, test_y = D.flatten_patches(task.test.x), task.test.y
    model = MLP(MLPConfig(n_in=256, n_hidden=128))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = DFATrainer(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    fit(model, train, steps=250, batch_size=32, optimizer=opt, grad_clip=None,
        compute_grads=trainer.compute_grads)  # fmt: skip
    with torch.no_grad():
        acc = accuracy(model(test_x)[0], test_y)
    assert acc > 0.4, f"DFA reached only {acc:.2f} (chance 0.10)"
    # the hidden layers learned through the random feedback, not only the output layer
    assert not torch.equal(before["hidden.0.weight"], model.hidden[0].weight)


def test_dfa_hidden_gradients_are_not_backprop_gradients():
    model = MLP(MLPConfig(n_in=8, n_hidden=16, n_classes=3))
    x, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    DFATrainer(model).compute_grads(x, y)
    dfa_out = model.out.weight.grad.clone()
    dfa_hidden = model.hidden[0].weight.grad.clone()
    model.zero_grad()
    model(x, y)[1].backward()
    assert torch.allclose(dfa_out, model.out.weight.grad, atol=1e-6)  # output layer: exact
    assert not torch.allclose(dfa_hidden, model.hidden[0].weight.grad, atol=1e-4)


# ------------------------------------------------------------------------------------ FLOPs


def test_count_flops_counts_a_linear_layer_exactly():
    lin = torch.nn.Linear(8, 4)
    assert count_flops(lin, torch.randn(3, 8)) == 2 * 3 * 8 * 4
    assert lin.training  # the mode is restored


def test_count_flops_counts_softmax_attention_on_the_cpu():
    q = k = v = torch.randn(2, 3, 16, 8)  # (B, H, T, D)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    # q kᵀ and (softmax) v: 2 matmuls of 2·T·T·D FLOPs per (batch, head)
    assert count_flops(lambda t: sdpa(t, k, v), q) == 2 * 3 * 2 * (2 * 16 * 16 * 8)
    short = count_flops(Transformer(lm_config(block_size=64)), torch.zeros(1, 16, dtype=torch.long))
    long = count_flops(Transformer(lm_config(block_size=64)), torch.zeros(1, 64, dtype=torch.long))
    assert long > 4 * short  # the attention term grows quadratically


def test_greentrack_exports_count_flops():
    import greentrack as gt

    assert gt.count_flops is count_flops
