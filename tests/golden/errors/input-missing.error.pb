
Q
USER:RuntimeError:TypeError: t() missing 1 required positional argument: 'b' 