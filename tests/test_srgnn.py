"""SR-GNN: batch graphs against hand-built matrices, the network against a per-session reference
written from the official code's description, the variants' matrices, gradients, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sessbench.data.sessions import SessionSet, TrainingData
from sessbench.errors import ConfigError
from sessbench.models import FitContext, get_model, resolve_models
from srgnn.global_graph import GlobalItemGraph, transition_counts
from srgnn.graph import (
    build_session_graphs,
    connection_matrix,
    higher_order_connections,
    session_connections,
)
from srgnn.model import SRGNNNet
from srgnn.item_table import TableScratch, lookup, scores_cross_entropy

ALL = ["srgnn", "srgnn-ngc", "srgnn-fc", "srgnn-l", "srgnn-avg", "srgnn-att"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def padded(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    items = torch.tensor([s + [0] * (width - len(s)) for s in sequences])
    return items, torch.tensor([len(s) for s in sequences])


# ---------------------------------------------------------------------------- graphs


def test_graph_of_a_hand_built_batch() -> None:
    items, lengths = padded([[5, 3, 5, 7], [2, 2], [9]])
    g = build_session_graphs(items, lengths)
    assert g.node_items.tolist() == [3, 5, 7, 2, 9]  # distinct items, increasing, row by row
    assert g.node_session.tolist() == [0, 0, 0, 1, 2]
    assert g.n_nodes.tolist() == [3, 1, 1]
    assert g.alias[0].tolist() == [1, 0, 1, 2]
    assert g.alias[1, :2].tolist() == [3, 3] and g.alias[2, 0] == 4
    assert g.mask.tolist() == [[True] * 4, [True, True, False, False], [True, False, False, False]]
    assert g.last.tolist() == [2, 3, 4]
    assert g.counts.tolist() == [1.0, 2.0, 1.0, 2.0, 1.0]
    # distinct transitions 5->3, 3->5, 5->7, 2->2 (packed ids)
    assert sorted(zip(g.edge_src.tolist(), g.edge_dst.tolist())) == [(0, 1), (1, 0), (1, 2), (3, 3)]


def test_in_out_normalization_against_hand_built_matrices() -> None:
    """Session 5 3 5 7 (nodes 3, 5, 7): adj 5->3, 3->5, 5->7; node 5 has out-degree 2."""
    items, lengths = padded([[5, 3, 5, 7], [2, 2]])
    g = build_session_graphs(items, lengths)
    a = connection_matrix(g, session_connections(g))
    assert a.shape == (2, 3, 6)  # padded to the batch's largest node count
    a_in = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float32)
    a_out = torch.tensor([[0, 1, 0], [0.5, 0, 0.5], [0, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(a[0], torch.cat([a_in, a_out], dim=1))
    # session 2 2: one node with a self-loop, normalized to 1 both ways; the padding is zero
    expected = torch.zeros(3, 6)
    expected[0, 0] = expected[0, 3] = 1.0
    torch.testing.assert_close(a[1], expected)


def test_repeated_transition_counts_once() -> None:
    items, lengths = padded([[1, 2, 1, 2, 1, 3]])  # 1->2 twice, 2->1 twice, 1->3 once
    g = build_session_graphs(items, lengths)
    a = connection_matrix(g, session_connections(g))[0]
    # A_out row of item 1 (node 0): successors 2 and 3, each 1/2 (not 2/3 and 1/3)
    torch.testing.assert_close(a[0, 3:], torch.tensor([0.0, 0.5, 0.5]))
    # A_in row of item 2 (node 1): one distinct predecessor (1)
    torch.testing.assert_close(a[1, :3], torch.tensor([1.0, 0.0, 0.0]))


def official_connection_matrix(seq: list[int]) -> tuple[np.ndarray, list[int]]:
    """The official get_slice's u_A for one unpadded prefix, written out as loops (reference)."""
    node = sorted(set(seq))
    n = len(node)
    adj = np.zeros((n, n))
    for a, b in zip(seq[:-1], seq[1:]):
        adj[node.index(a), node.index(b)] = 1
    in_sum = adj.sum(0)
    in_sum[in_sum == 0] = 1
    out_sum = adj.sum(1)
    out_sum[out_sum == 0] = 1
    u_a_in = adj / in_sum
    u_a_out = adj.T / out_sum
    return np.concatenate([u_a_in, u_a_out]).T, node


def test_batch_graphs_match_the_per_session_reference_on_random_prefixes() -> None:
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(1, 8, size=rng.integers(1, 12))) for _ in range(40)]
    items, lengths = padded([[int(x) for x in s] for s in seqs])
    g = build_session_graphs(items, lengths)
    a = connection_matrix(g, session_connections(g)).numpy()
    n_max = a.shape[1]
    for row, seq in enumerate(seqs):
        ref, node = official_connection_matrix([int(x) for x in seq])
        n = len(node)
        got = np.concatenate([a[row, :n, :n], a[row, :n, n_max : n_max + n]], axis=1)
        np.testing.assert_allclose(got, ref, rtol=1e-6)
        assert not a[row, n:].any() and not a[row, :, n:n_max].any()
        start = int(g.node_start[row])
        assert g.node_items[start : start + n].tolist() == node
        assert (g.alias[row, : len(seq)] - start).tolist() == [node.index(int(x)) for x in seq]


def test_graphs_stay_on_the_batch_device_and_pad_to_the_batch() -> None:
    items, lengths = padded([[1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 1, 1], [4, 4]])
    g = build_session_graphs(items, lengths)
    assert g.n_total_nodes == 9  # 8 + 1 real nodes: no padding nodes at all
    assert connection_matrix(g, session_connections(g)).shape == (2, 8, 16)


# ---------------------------------------------------------------------------- variants' matrices


def test_full_connection_block_is_every_higher_order_relation() -> None:
    """Prefix 4 2 4 6: 4 before 2, 4 before 4, 4 before 6, 2 before 4, 2 before 6."""
    items, lengths = padded([[4, 2, 4, 6]])
    g = build_session_graphs(items, lengths)
    fc = higher_order_connections(g, block=0)
    a = connection_matrix(g, fc)[0]  # nodes 2, 4, 6
    expected = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(a, expected)


def test_full_connection_variant_appends_a_third_block() -> None:
    net = SRGNNNet(10, hidden_size=4, connection="full")
    items, lengths = padded([[4, 2, 4, 6], [1, 3]])
    g = net.graphs(items, lengths)
    a = connection_matrix(g, net.connections(g))
    assert a.shape == (2, 3, 9)
    torch.testing.assert_close(a[:, :, :6], connection_matrix(g, session_connections(g)))
    torch.testing.assert_close(a[1, :2, 6:8], torch.tensor([[0.0, 1.0], [0.0, 0.0]]))


def test_global_item_graph_weights() -> None:
    train = SessionSet.from_lists([[1, 2, 3], [1, 2], [2, 3, 1], [1, 3]])
    counts = transition_counts(train, 4).toarray()
    assert counts[1, 2] == 2 and counts[2, 3] == 2 and counts[3, 1] == 1 and counts[1, 3] == 1
    graph = GlobalItemGraph(train, 4)
    w_in, w_out = graph.lookup(torch.tensor([1, 2, 1, 4]), torch.tensor([2, 3, 3, 1]))
    # out: c(u,v) / out-count(u): 1 -> {2: 2, 3: 1}; in: c(u,v) / in-count(v): 3 <- {2: 2, 1: 1}
    torch.testing.assert_close(w_out, torch.tensor([2 / 3, 1.0, 1 / 3, 0.0]))
    torch.testing.assert_close(w_in, torch.tensor([1.0, 2 / 3, 1 / 3, 0.0]))


def test_ngc_variant_uses_global_weights_on_session_edges() -> None:
    train = SessionSet.from_lists([[1, 2, 3], [1, 2], [2, 3, 1], [1, 3]])
    net = SRGNNNet(4, hidden_size=4, connection="global", global_graph=GlobalItemGraph(train, 4))
    items, lengths = padded([[1, 2, 3, 4]])  # edges 1->2, 2->3 (seen), 3->4 (never seen)
    g = net.graphs(items, lengths)
    a = connection_matrix(g, net.connections(g))[0]
    a_in = torch.zeros(4, 4)
    a_out = torch.zeros(4, 4)
    a_out[0, 1], a_in[1, 0] = 2 / 3, 1.0  # 1 -> 2: out-count(1) = 3, in-count(2) = 2
    a_out[1, 2], a_in[2, 1] = 1.0, 2 / 3  # 2 -> 3: out-count(2) = 2, in-count(3) = 3
    torch.testing.assert_close(a, torch.cat([a_in, a_out], dim=1))


# ---------------------------------------------------------------------------- the network


def reference_session_vector(net: SRGNNNet, seq: list[int]) -> torch.Tensor:
    """One prefix through the official computation, per position, with the dense matrix."""
    ref, node = official_connection_matrix(seq)
    a = torch.tensor(ref, dtype=torch.float32)
    n, d = len(node), net.hidden_size
    h = net.item_embedding[torch.tensor(node) - 1]
    c = net.cell
    for _ in range(net.step):
        e_in = h @ c.edge_weight[:d].T + c.edge_bias[:d]
        e_out = h @ c.edge_weight[d:].T + c.edge_bias[d:]
        inputs = torch.cat([a[:, :n] @ e_in + c.propagation_bias[0], a[:, n:] @ e_out + c.propagation_bias[1]], 1)
        gi = inputs @ c.w_ih.T + c.b_ih
        gh = h @ c.w_hh.T + c.b_hh
        i_r, i_i, i_n = gi.chunk(3, 1)
        h_r, h_i, h_n = gh.chunk(3, 1)
        reset, update = torch.sigmoid(i_r + h_r), torch.sigmoid(i_i + h_i)
        new = torch.tanh(i_n + reset * h_n)
        h = new + update * (h - new)
    seq_hidden = h[torch.tensor([node.index(x) for x in seq])]  # [len, d], repeats included
    ht = seq_hidden[-1]
    alpha = net.linear_three(torch.sigmoid(net.linear_one(ht) + net.linear_two(seq_hidden)))
    a_global = (alpha * seq_hidden).sum(0)
    return net.linear_transform(torch.cat([a_global, ht]))


@pytest.mark.parametrize("step", [1, 2])
def test_network_matches_the_per_session_reference(step: int) -> None:
    torch.manual_seed(0)
    net = SRGNNNet(12, hidden_size=8, step=step)
    rng = np.random.default_rng(1)
    seqs = [[int(x) for x in rng.integers(1, 13, size=rng.integers(1, 9))] for _ in range(16)]
    items, lengths = padded(seqs)
    with torch.no_grad():
        got = net.session_vectors(items, lengths)
        want = torch.stack([reference_session_vector(net, s) for s in seqs])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_readouts_of_the_representation_variants() -> None:
    torch.manual_seed(0)
    items, lengths = padded([[3, 1, 3, 2], [5, 5]])
    nets = {r: SRGNNNet(6, hidden_size=4, readout=r) for r in ("hybrid", "local", "average", "attention")}
    for net in nets.values():
        net.load_state_dict(nets["hybrid"].state_dict(), strict=False)
    with torch.no_grad():
        g = nets["local"].graphs(items, lengths)
        h = nets["local"].node_states(g)
        seq = h[g.alias]  # [B, L, d]
        torch.testing.assert_close(nets["local"].session_vectors(items, lengths), seq[[0, 1], [3, 1]])
        mean = torch.stack([seq[0, :4].mean(0), seq[1, :2].mean(0)])
        torch.testing.assert_close(nets["average"].session_vectors(items, lengths), mean)
        hybrid = nets["hybrid"].session_vectors(items, lengths)
        att = nets["attention"].session_vectors(items, lengths)
        local = seq[[0, 1], [3, 1]]
        torch.testing.assert_close(hybrid, nets["hybrid"].linear_transform(torch.cat([att, local], 1)))
    assert not hasattr(nets["local"], "linear_one") and not hasattr(nets["attention"], "linear_transform")


def test_fused_cross_entropy_equals_the_plain_one() -> None:
    torch.manual_seed(0)
    vectors = torch.randn(7, 5, requires_grad=True)
    table = torch.nn.Parameter(torch.randn(30, 5))
    targets = torch.tensor([0, 3, 29, 3, 11, 5, 0])
    scratch = TableScratch()
    for _ in range(2):  # the second round reuses the buffers
        vectors.grad = table.grad = None
        loss = scores_cross_entropy(vectors, table, targets, scratch)
        (2.0 * loss).backward()
    got = (loss.detach(), vectors.grad.clone(), table.grad.clone())
    vectors.grad = table.grad = None
    ref = torch.nn.functional.cross_entropy(vectors @ table.T, targets)
    (2.0 * ref).backward()
    torch.testing.assert_close(got[0], ref.detach())
    torch.testing.assert_close(got[1], vectors.grad)
    torch.testing.assert_close(got[2], table.grad)
    with torch.no_grad():
        torch.testing.assert_close(scores_cross_entropy(vectors, table, targets, scratch), ref.detach())


def test_blocked_cross_entropy_equals_the_plain_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 4 items over 30 (the last one partial): same loss and gradients, accumulation too."""
    import sessbench.blocked_products as blocked

    monkeypatch.setattr(blocked, "CPU_ITEM_BLOCK", 4)
    assert blocked.item_blocks(30, torch.device("cpu"))[-2:] == [(24, 28), (28, 30)]
    torch.manual_seed(1)
    vectors = torch.randn(6, 5, requires_grad=True)
    table = torch.nn.Parameter(torch.randn(30, 5))
    targets = torch.tensor([0, 3, 29, 28, 11, 5])
    scratch = TableScratch()
    scores_cross_entropy(vectors, table, targets, scratch).backward()
    scores_cross_entropy(vectors, table, targets, scratch).backward()  # accumulates, block by block
    got = (vectors.grad.clone(), table.grad.clone())
    vectors.grad = table.grad = None
    ref = torch.nn.functional.cross_entropy(vectors @ table.T, targets)
    (2.0 * ref).backward()
    torch.testing.assert_close(got[0], vectors.grad)
    torch.testing.assert_close(got[1], table.grad)


def test_fused_cross_entropy_is_exact_when_the_target_probability_underflows() -> None:
    """A target scored far below the rest has p = 0 in float32; the loss must stay finite and exact."""
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    table = torch.nn.Parameter(torch.tensor([[200.0, 0.0], [-200.0, 0.0], [0.0, 1.0]]))
    targets = torch.tensor([1, 2])  # row 0: target 400 below the best item, p underflows
    loss = scores_cross_entropy(vectors, table, targets, TableScratch())
    loss.backward()
    got = (loss.detach(), vectors.grad.clone(), table.grad.clone())
    vectors.grad = table.grad = None
    ref = torch.nn.functional.cross_entropy(vectors @ table.T, targets)
    ref.backward()
    assert torch.isfinite(got[0]) and got[0] > 150
    torch.testing.assert_close(got[0], ref.detach())
    torch.testing.assert_close(got[1], vectors.grad)
    torch.testing.assert_close(got[2], table.grad)


def test_fused_cross_entropy_accumulates_and_survives_interleaved_losses() -> None:
    torch.manual_seed(0)
    vectors = torch.randn(4, 3, requires_grad=True)
    table = torch.nn.Parameter(torch.randn(9, 3))
    targets = torch.tensor([1, 2, 3, 8])
    scratch = TableScratch()
    first = scores_cross_entropy(vectors, table, targets, scratch)
    second = scores_cross_entropy(vectors * 2, table, targets, scratch)  # before first's backward
    (first + second).backward()
    got = table.grad.clone()
    table.grad = None
    ref = torch.nn.functional.cross_entropy(vectors @ table.T, targets)
    ref = ref + torch.nn.functional.cross_entropy((vectors * 2) @ table.T, targets)
    ref.backward()
    torch.testing.assert_close(got, table.grad)
    table.grad = None
    scores_cross_entropy(vectors, table, targets, scratch).backward()
    once = table.grad.clone()
    scores_cross_entropy(vectors, table, targets, scratch).backward()  # no zero_grad: accumulates
    torch.testing.assert_close(table.grad, 2 * once)


def test_lookup_into_grad_gives_the_autograd_gradient() -> None:
    """Training-path gradients of every parameter equal plain autograd's (lookup included)."""
    data = tiny_data()
    model = get_model("srgnn").create(hidden_size=8, epochs=0)
    model.fit(data, FitContext(seed=0))
    module = model.module.train()
    batch = data.train_examples().batch(slice(0, 50))
    model.loss(module, batch).backward()
    fast = {k: p.grad.clone() for k, p in module.named_parameters()}
    module.zero_grad(set_to_none=True)
    vectors = module.session_vectors(batch.items, batch.lengths)
    torch.nn.functional.cross_entropy(vectors @ module.item_embedding.T, batch.targets - 1).backward()
    for name, p in module.named_parameters():
        torch.testing.assert_close(fast[name], p.grad, rtol=1e-5, atol=1e-7, msg=name)
    # the lookup alone (no other gradient for the table yet) creates .grad
    table = torch.nn.Parameter(torch.randn(6, 3))
    lookup(table, torch.tensor([[1, 1], [4, 0]]), into_grad=True).sum().backward()
    torch.testing.assert_close(table.grad, torch.tensor([[1.0] * 3, [2.0] * 3, [0.0] * 3, [0.0] * 3, [1.0] * 3, [0.0] * 3]))


def test_initialization_is_uniform_within_one_over_sqrt_d() -> None:
    torch.manual_seed(0)
    net = SRGNNNet(50, hidden_size=16)
    for name, p in net.named_parameters():
        assert p.abs().max() <= 0.25 + 1e-7, name  # 1/sqrt(16)
        assert p.abs().max() > 0.15, name


# ---------------------------------------------------------------------------- the models


def tiny_data(n_sessions: int = 120, n_items: int = 15, seed: int = 0) -> TrainingData:
    rng = np.random.default_rng(seed)
    sessions = []
    for _ in range(n_sessions):
        start = int(rng.integers(1, n_items))
        length = int(rng.integers(2, 7))
        sessions.append([(start + k - 1) % n_items + 1 for k in range(length)])
    return TrainingData(SessionSet.from_lists(sessions), None, n_items, "tiny")


def test_registered_models_and_groups() -> None:
    assert set(resolve_models("srgnn-variants")) == set(ALL[1:])
    assert "srgnn" in resolve_models("paper")
    spec = get_model("srgnn")
    assert spec.defaults["l2"] == 1e-5 and spec.defaults["hidden_size"] == 100
    assert spec.defaults["lr"] == 1e-3 and spec.defaults["batch_size"] == 100 and spec.defaults["dropout"] == 0.0
    for name in ALL:
        assert get_model(name).cls.__doc__


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_every_parameter(name: str) -> None:
    data = tiny_data()
    model = get_model(name).create(hidden_size=8, epochs=0)
    model.fit(data, FitContext(seed=0))
    module = model.module
    module.train()
    batch = data.train_examples().batch(slice(0, 64))
    loss = model.loss(module, batch)
    loss.backward()
    for pname, p in module.named_parameters():
        assert p.grad is not None and p.grad.layout == torch.strided, pname
        assert float(p.grad.abs().sum()) > 0, pname


@pytest.mark.parametrize("name", ALL)
def test_scores_shape_padding_column_and_loss_agree(name: str) -> None:
    data = tiny_data()
    model = get_model(name).create(hidden_size=8, epochs=1)
    model.fit(data, FitContext(seed=0))
    batch = data.train_examples().batch(slice(0, 10))
    scores = model.score(batch)
    assert scores.shape == (10, data.n_items + 1)
    assert torch.isinf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy(scores[:, 1:], batch.targets - 1)
        torch.testing.assert_close(ce, model.loss(model.module.eval(), batch))


def test_same_seed_same_result_on_cpu() -> None:
    data = tiny_data()
    batch = data.train_examples().batch(slice(None))

    def fitted(seed: int) -> torch.Tensor:
        model = get_model("srgnn").create(hidden_size=8, epochs=2)
        model.fit(data, FitContext(seed=seed))
        return model.score(batch)

    a, b, c = fitted(0), fitted(0), fitted(1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_learns_a_successor_rule() -> None:
    data = tiny_data(n_sessions=300)
    model = get_model("srgnn").create(hidden_size=16, epochs=6, lr=0.01, lr_decay_step=0, batch_size=32)
    model.fit(data, FitContext(seed=0))
    batch = data.train_examples().batch(slice(None))
    scores = model.score(batch)
    hit = (scores[:, 1:].argmax(1) + 1 == batch.targets).float().mean()
    assert hit > 0.9


def test_official_torch2_schedule_decays_one_epoch_earlier() -> None:
    data = tiny_data(n_sessions=20)

    def lrs(schedule: str) -> list[float]:
        ctx = FitContext(seed=0)
        model = get_model("srgnn").create(hidden_size=4, epochs=7, lr_schedule=schedule)
        model.fit(data, ctx)
        return [round(e["lr"], 12) for e in ctx.epoch_log]

    assert lrs("after_epoch") == [1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-5]
    assert lrs("official_torch2") == [1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-5, 1e-5]


def test_optimizer_is_adam_with_l2_as_weight_decay() -> None:
    model = get_model("srgnn").create(hidden_size=4)
    opt = model.make_optimizer(SRGNNNet(5, hidden_size=4))
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["weight_decay"] == 1e-5 and opt.defaults["lr"] == 1e-3


@pytest.mark.parametrize(
    "params, text",
    [({"dropout": 1.0}, "dropout"), ({"lr_schedule": "sometimes"}, "lr_schedule"), ({"step": 0}, "step"),
     ({"hidden_size": 0}, "hidden_size")],
)
def test_bad_hyperparameters_are_config_errors(params: dict, text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        get_model("srgnn").create(**params)


def test_dropout_is_used_only_in_training() -> None:
    data = tiny_data()
    model = get_model("srgnn").create(hidden_size=8, epochs=1, dropout=0.5)
    model.fit(data, FitContext(seed=0))
    batch = data.train_examples().batch(slice(0, 10))
    assert torch.equal(model.score(batch), model.score(batch))
    module = model.module.train()
    with torch.no_grad():
        assert not torch.equal(module.session_vectors(batch.items, batch.lengths), module.session_vectors(batch.items, batch.lengths))


def test_checkpoint_round_trip_keeps_the_global_graph(tmp_path) -> None:
    data = tiny_data()
    model = get_model("srgnn-ngc").create(hidden_size=8, epochs=1)
    model.fit(data, FitContext(seed=0))
    model.save(tmp_path / "m.pt")
    other = get_model("srgnn-ngc").create(hidden_size=8)
    other.load(tmp_path / "m.pt", data=data)
    batch = data.train_examples().batch(slice(0, 10))
    assert torch.equal(model.score(batch), other.score(batch))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("name", ALL)
def test_runs_on_cuda(name: str) -> None:
    data = tiny_data()
    model = get_model(name).create(hidden_size=8, epochs=1)
    model.fit(data, FitContext(seed=0, device=torch.device("cuda")))
    batch = data.train_examples().batch(slice(0, 10))
    cpu_model = get_model(name).create(hidden_size=8, epochs=0)
    cpu_model.fit(data, FitContext(seed=0))
    cpu_model.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    torch.testing.assert_close(model.score(batch).cpu(), cpu_model.score(batch), rtol=1e-4, atol=1e-4)


def test_extra_item_rows_train_but_are_never_candidates() -> None:
    data = tiny_data()
    model = get_model("srgnn").create(hidden_size=8, epochs=1, item_rows=40)
    model.fit(data, FitContext(seed=0))
    assert model.module.item_embedding.shape == (40, 8)
    batch = data.train_examples().batch(slice(0, 5))
    assert model.score(batch).shape == (5, data.n_items + 1)
    with pytest.raises(ValueError, match="item_rows"):
        SRGNNNet(10, hidden_size=4, item_rows=5)
