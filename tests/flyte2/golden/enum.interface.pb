


x
:
RED
GREEN

o0
:
RED
GREEN