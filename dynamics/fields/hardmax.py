"""The hardmax limit beta -> infinity of self-attention (paper §2.9, (9.4)-(9.6); Survey §7).

As beta grows, softmax_j(beta s_ij) concentrates uniformly on the maximisers of s_ij, so
each token attends to the set

    C_i = argmax_j <Q x_i, K x_j>     (ties within a tolerance, averaged over).

* On the sphere (Survey form, self excluded by default):
      x_dot_i = P^perp_{x_i} ( (1/|C_i|) sum_{j in C_i} V x_j ),   C_i taken over j != i.
* In R^d, the rescaled form (9.4)-(9.6) (self allowed by default):
      z_dot_i = (1/|C_i|) sum_{j in C_i} V (z_j - z_i).

The field is discontinuous where C_i changes; solutions exist in Filippov's sense but are
not unique (Example 9.3), and averaging the ties picks one Filippov selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from attention.array_api import Array, namespace
from dynamics.fields.attention import SelfAttention
from dynamics.fields.base import Field
from dynamics.space import SPHERE, Euclidean, Sphere
from dynamics.validation import check_real


@dataclass(frozen=True)
class Hardmax(Field):
    """Hardmax attention; see the module docstring.

    Q, K, V, QK:  parameters as in ``SelfAttention`` (None = identity; constant or callable)
    space:        SPHERE (Survey form) or EUCLIDEAN (rescaled form (9.4)-(9.6))
    exclude_self: drop j = i from the argmax; default True on the sphere, False in R^d
    tol:          j is a maximiser when s_ij >= max_k s_ik - tol * max(1, |max_k s_ik|)
    """

    Q: Any = None
    K: Any = None
    V: Any = None
    QK: Any = None
    space: Sphere | Euclidean = field(default=SPHERE)
    exclude_self: bool | None = None
    tol: float = 1e-10

    def __post_init__(self) -> None:
        if not isinstance(self.space, (Sphere, Euclidean)):
            raise TypeError("Hardmax lives on SPHERE or EUCLIDEAN")
        check_real("tol", self.tol, nonnegative=True)
        if self.exclude_self is None:
            object.__setattr__(self, "exclude_self", isinstance(self.space, Sphere))
        # the parameter handling of SelfAttention (shapes, backends, time dependence)
        object.__setattr__(
            self, "_params", SelfAttention(1.0, Q=self.Q, K=self.K, V=self.V, QK=self.QK)
        )

    @property
    def time_dependent(self) -> bool:
        return self._params.time_dependent

    def check(self, x: Array) -> None:
        """Raise if the parameters do not fit tokens x (batch, n, d)."""
        self._params.check(x)

    def on(self, like: Array) -> Hardmax:
        p = self._params.on(like)
        return replace(self, Q=p.Q, K=p.K, V=p.V, QK=p.QK)

    def weights(self, t: Any, x: Array) -> Array:
        """The hardmax attention matrix (batch, n, n): 1/|C_i| on C_i, 0 elsewhere."""
        q, k, _ = self._params.queries_keys_values(t, x)
        return self._argmax_weights(q, k)

    def _argmax_weights(self, q: Array, k: Array) -> Array:
        xp = namespace(q, k)
        s = q @ xp.matrix_transpose(k)
        n = s.shape[-1]
        if self.exclude_self:
            eye = xp.eye(n, dtype=xp.bool)
            if hasattr(s, "device") and not isinstance(s.device, str):
                eye = xp.asarray(eye, device=s.device)
            s = xp.where(eye, -xp.inf, s)
        top = xp.max(s, axis=-1, keepdims=True)
        finite = xp.isfinite(top)
        scale = xp.where(finite, xp.maximum(xp.abs(top), xp.ones_like(top)), xp.ones_like(top))
        chosen = xp.logical_and(s >= top - self.tol * scale, xp.isfinite(s))
        chosen = xp.astype(chosen, q.dtype)
        count = xp.sum(chosen, axis=-1, keepdims=True)
        return chosen / xp.where(count > 0, count, xp.ones_like(count))

    def drive(self, t: Any, x: Array) -> Array:
        """mean_{C_i} V x_j (sphere) or mean_{C_i} V (z_j - z_i) (R^d); shape (batch, n, d)."""
        q, k, v = self._params.queries_keys_values(t, x)
        w = self._argmax_weights(q, k)
        if isinstance(self.space, Sphere):
            return w @ v
        xp = namespace(x)
        return w @ v - xp.sum(w, axis=-1, keepdims=True) * v

    def __call__(self, t: Any, x: Array) -> Array:
        return self.space.project(x, self.drive(t, x))
