"""The PyTorch peer: fastnn's network as ``nn.Linear`` layers trained by ``torch.optim.SGD``.

ReLU or sigmoid between the layers; softmax cross-entropy on the logits for
two or more classes, or one sigmoid output with binary cross-entropy
(``BCEWithLogitsLoss``) for a 784-...-1 network; float32 CPU tensors. A CPU
build of PyTorch is enough.
"""

from __future__ import annotations

import numpy as np


def torch_info() -> dict:
    """Version, CPU capability and thread count of the importable PyTorch."""
    import torch

    info = {"version": torch.__version__, "threads": torch.get_num_threads()}
    try:
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # older releases
        pass
    info["mkl"] = bool(torch.backends.mkl.is_available())
    info["mkldnn"] = bool(torch.backends.mkldnn.is_available())
    return info


class TorchMLP:
    """fastnn's network in PyTorch, over inputs held as a CPU tensor.

    Parameters
    ----------
    sizes : layer sizes ``(n_in, hidden..., n_out)``; ``n_out == 1`` is a
        binary network (sigmoid output, binary cross-entropy).
    hidden : ``"relu"`` or ``"sigmoid"``.
    x : (N, n_in) float32 training inputs, shared with NumPy (not copied).
    labels : (N,) output-class indices in ``0 .. n_out-1`` (0 or 1 when binary).

    Parameters are set from and read back as fastnn's layout (weights
    ``(k, m)`` for ``x @ w``); ``nn.Linear`` keeps the transpose ``(m, k)``.
    """

    name = "torch"

    def __init__(self, sizes, hidden, x, labels):
        import torch
        from torch import nn

        if x.dtype != np.float32:
            raise ValueError(f"the PyTorch peer runs float32, got {x.dtype}")
        self._torch = torch
        activation = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}[hidden]
        layers = []
        for i, (k, m) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(k, m))
            if i < len(sizes) - 2:
                layers.append(activation())
        self.model = nn.Sequential(*layers)
        self.linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
        self.x = torch.from_numpy(np.ascontiguousarray(x))
        # Both losses take the mean over the batch, like fastnn's 1/m scale.
        if sizes[-1] == 1:
            self.labels = torch.from_numpy(np.asarray(labels, dtype=np.float32)[:, None])
            self.loss = nn.BCEWithLogitsLoss()
        else:
            self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
            self.loss = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)

    def set_parameters(self, weights, biases) -> None:
        """Copy fastnn-layout parameters in: ``weight = w.T``, ``bias = b``."""
        torch = self._torch
        with torch.no_grad():
            for linear, w, b in zip(self.linears, weights, biases):
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                linear.bias.copy_(torch.from_numpy(b))

    def parameters(self):
        """``(weights, biases)`` as NumPy arrays in fastnn's layout (copies)."""
        weights = [linear.weight.detach().numpy().T.copy() for linear in self.linears]
        biases = [linear.bias.detach().numpy().copy() for linear in self.linears]
        return weights, biases

    def batches(self, order, batch_size: int):
        """The row-index tensor of each batch of ``order``, made before timing.

        One batch holding every row is ``None``: that step then reads the
        inputs in place instead of gathering a permuted copy. Its gradient is
        the same sum over the same rows (only the summation order differs).
        """
        torch = self._torch
        order = np.asarray(order, dtype=np.int64)
        if batch_size >= order.shape[0] == self.x.shape[0]:
            return [None]
        index = torch.from_numpy(order)
        return list(torch.split(index, batch_size))

    def train_epoch(self, batches, lr: float) -> int:
        """One SGD step per batch, the usual eager loop; returns the steps taken."""
        model, x, labels, loss_fn = self.model, self.x, self.labels, self.loss
        optimizer = self.optimizer
        for group in optimizer.param_groups:
            group["lr"] = lr
        for rows in batches:
            if rows is None:
                xb, yb = x, labels
            else:
                xb, yb = x[rows], labels[rows]
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
        return len(batches)
