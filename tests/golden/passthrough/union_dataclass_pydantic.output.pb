
ËJÈ


‚¥value¥label¡pmsgpack¤	2Æ
†

propertiesx*v
B
label9*7

defaultleaf

titleLabel

typestring
0
value'*%

titleValue

type	integer

required2	
value

titlePLeaf

typeobjectJ?
=
;
cache-key-metadata%*#
!
serialization-format	msgpackZ
Pydantic Transformer