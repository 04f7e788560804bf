
Z
USER:RuntimeErrorCTypeError: t() missing 2 required positional arguments: 'a' and 'b' 