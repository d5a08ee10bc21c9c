"""``evaluating``: eval mode and no autograd inside, the model's own mode back afterwards (also
after an exception), as torch's ``model.training`` and ``torch.is_grad_enabled`` report."""

from __future__ import annotations

import pytest

from qwen25.train.modes import evaluating

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("training", [True, False])
def test_mode_and_grad_inside_and_after(training: bool) -> None:
    m = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    m.train(training)
    with evaluating(m):
        assert not m.training and not m[1].training and not torch.is_grad_enabled()
        y = m(torch.ones(2, 3))
        assert not y.requires_grad
    assert m.training is training and m[1].training is training and torch.is_grad_enabled()


def test_an_exception_restores_the_mode() -> None:
    m = torch.nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="boom"):
        with evaluating(m):
            raise RuntimeError("boom")
    assert m.training and torch.is_grad_enabled()
