"""Vector fields of token dynamics: each is a pure function (t, x) -> velocity."""
