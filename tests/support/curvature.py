"""Dense references for the K-FAC and critic tests, built directly with torch.func (independent of rlkit.fisher)."""
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap


def per_sample_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """J of shape (N, K, P): the output (a tuple is concatenated, then flattened to K) w.r.t. all parameters, per sample."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, xi):
        out = functional_call(model, p, (xi.unsqueeze(0),))
        if isinstance(out, tuple):
            out = torch.cat([o.reshape(-1) for o in out])
        return out.reshape(-1)

    J = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    n = x.shape[0]
    return torch.cat([J[k].reshape(n, J[k].shape[1], -1) for k in params], dim=2)
