"""SVMs with hard-negative mining (fastrcnn_lite.svm) and ridge box regressors (fastrcnn_lite.ridge)."""

import pytest
import torch

from fastrcnn_lite.ridge import BoxRegressors, ridge_regression, train_box_regressors
from fastrcnn_lite.svm import LinearSVMs, feature_scale, svm_objective, train_linear_svm, train_svms


def test_hand_worked_symmetric_case():
    # x = +1 (y = +1) and x = -1 (y = -1), no positive weighting, bias free to be 0 by symmetry:
    # minimise 0.5 w^2 + 2 C (1 - w)^2  ->  w = 4C / (1 + 4C); C = 1 -> 0.8.
    x = torch.tensor([[1.0], [-1.0]])
    y = torch.tensor([1, -1])
    w, b = train_linear_svm(x, y, C=1.0, positive_weight=1.0)
    assert w.item() == pytest.approx(0.8, abs=1e-6)
    assert b == pytest.approx(0.0, abs=1e-6)


def test_solution_is_a_minimum_of_the_objective():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=gen) * 3
    y = torch.where(x[:, 0] + 0.5 * x[:, 1] + 0.3 * torch.randn(200, generator=gen) > 1, 1, -1)
    w, b = train_linear_svm(x, y, C=0.05)
    params = torch.cat([w.double(), torch.tensor([b / 10.0], dtype=torch.float64)]).requires_grad_(
        True
    )
    loss = svm_objective(params[:-1], params[-1] * 10.0, x.double(), y, 0.05)
    (grad,) = torch.autograd.grad(loss, params)
    assert grad.abs().max() < 1e-5
    # Brute force: no random nearby point is lower.
    with torch.no_grad():
        for _ in range(200):
            step = 1e-2 * torch.randn(6, generator=gen, dtype=torch.float64)
            p = params + step
            assert svm_objective(p[:-1], p[-1] * 10.0, x.double(), y, 0.05) >= loss - 1e-12
    # It classifies the training set well (the data is nearly separable).
    assert ((x @ w + b > 0) == (y > 0)).float().mean() > 0.9


def test_positive_weight_moves_the_boundary_towards_the_negatives():
    gen = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(50, 1, generator=gen) + 1, torch.randn(50, 1, generator=gen) - 1])
    y = torch.cat([torch.ones(50), -torch.ones(50)]).long()
    _, b1 = train_linear_svm(x, y, C=0.1, positive_weight=1.0)
    _, b2 = train_linear_svm(x, y, C=0.1, positive_weight=4.0)
    assert b2 > b1


def _toy_regions(num_images=6, dim=8, seed=0, absent=()):
    """Class k+1 lives along axis k: gt rows are positives, proposals are negatives of every other class."""
    gen = torch.Generator().manual_seed(seed)
    regions = []
    for i in range(num_images):
        labels = torch.tensor([1 + (i % 3)])
        labels = labels[~torch.isin(labels, torch.tensor(list(absent) or [-1]))]
        gt = torch.zeros(len(labels), dim)
        gt[torch.arange(len(labels)), labels - 1] = 3.0
        noise = torch.randn(60, dim, generator=gen).abs()
        hard = torch.zeros(3, dim)
        hard[:, i % 3] = 1.5  # near-misses of class (i % 3) + 1: the hard negatives
        features = torch.cat([gt + 0.1 * torch.randn(gt.shape, generator=gen), noise, hard])
        positive = torch.zeros(len(features), dtype=torch.long)
        positive[: len(labels)] = labels
        negative = torch.ones(len(features), 3, dtype=torch.bool)
        negative[: len(labels)] = False
        regions.append(
            {"features": features, "positive_labels": positive, "negative_mask": negative}
        )
    return regions


def test_hard_negative_mining_adds_margin_violators_and_separates():
    regions = _toy_regions()
    svms = train_svms(
        regions, 3, C=1.0, hard_negative_rounds=3, initial_negatives_per_image=1, progress=False
    )
    assert isinstance(svms, LinearSVMs)
    assert len(svms.history) >= 2
    assert sum(svms.history[1]) > sum(svms.history[0])  # round 1 added hard negatives
    for r in regions:
        scores = svms(r["features"])  # (P, 3)
        pos = r["positive_labels"] > 0
        assert (scores[pos].argmax(1) + 1 == r["positive_labels"][pos]).all()
        assert (scores[pos].max(1).values > 0).all()
        assert (scores[~pos] < 0).all()
    # After mining, no negative of the training set violates the margin by much.
    worst = max(svms(r["features"])[r["negative_mask"]].max().item() for r in regions)
    assert worst < 0


def test_class_without_positives_warns_and_never_fires():
    regions = _toy_regions(absent=(2,))
    with pytest.warns(UserWarning, match="'square' has no positive"):
        svms = train_svms(
            regions, 3, C=1.0, class_names=["circle", "square", "triangle"], progress=False
        )
    assert svms.trained.tolist() == [True, False, True]
    assert torch.isneginf(svms(regions[0]["features"])[:, 1]).all()
    # state round trip
    again = LinearSVMs.from_state_dict(svms.state_dict())
    torch.testing.assert_close(again(regions[0]["features"]), svms(regions[0]["features"]))


def test_train_svms_errors():
    bad = _toy_regions(num_images=1)
    bad[0]["negative_mask"] = bad[0]["negative_mask"][:, :2]
    with pytest.raises(ValueError, match="negative_mask"):
        train_svms(bad, 3, progress=False)
    with pytest.raises(ValueError, match=r"\+1 \(positive\) or -1"):
        train_linear_svm(torch.zeros(2, 2), torch.tensor([0, 1]))


def test_ridge_matches_lstsq_on_the_augmented_system():
    gen = torch.Generator().manual_seed(3)
    for num, dim in ((40, 6), (5, 12)):  # primal and dual branches
        x = torch.randn(num, dim, generator=gen, dtype=torch.float64)
        t = torch.randn(num, 4, generator=gen, dtype=torch.float64)
        lam = 2.5
        w, b = ridge_regression(x, t, lam)
        # [x 1; sqrt(lam) I 0] [w; b] ~ [t; 0]: ridge with an unregularised bias.
        a = torch.cat([torch.cat([x, torch.ones(num, 1, dtype=x.dtype)], 1),
                       torch.cat([lam**0.5 * torch.eye(dim, dtype=x.dtype), torch.zeros(dim, 1, dtype=x.dtype)], 1)])  # fmt: skip
        rhs = torch.cat([t, torch.zeros(dim, 4, dtype=x.dtype)])
        sol = torch.linalg.lstsq(a, rhs).solution
        torch.testing.assert_close(w.double(), sol[:-1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b.double(), sol[-1], atol=1e-5, rtol=1e-5)


def test_box_regressors_are_class_specific():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(300, 10, generator=gen)
    labels = torch.randint(1, 3, (300,), generator=gen)  # classes 1, 2 of K = 3 (3 has no examples)
    true_w = torch.randn(2, 10, 4, generator=gen)
    targets = torch.einsum("md,mdt->mt", x * feature_scale(x), true_w[labels - 1])
    reg = train_box_regressors(x, labels, targets, num_classes=3, lam=1e-6)
    assert isinstance(reg, BoxRegressors) and reg.counts.tolist()[2] == 0
    deltas = reg(x).reshape(300, 3, 4)
    torch.testing.assert_close(deltas[torch.arange(300), labels - 1], targets, atol=1e-3, rtol=1e-3)
    assert (deltas[:, 2] == 0).all()
    with pytest.raises(ValueError, match="targets"):
        train_box_regressors(x, labels, targets[:, :3], 3)
    with pytest.raises(ValueError, match="lam must be > 0"):
        ridge_regression(x, targets, 0.0)
