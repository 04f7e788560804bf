
ü
ù
xó
ð	2’
Á

properties²*¯
-
name%*#

titleName

typestring
1
weight'*%

titleWeight

typenumber
K
tagsC*A

items*

typestring

titleTags

typearray

typeobject

titleModel
(
required2
name
tags
weightJ?
=
;
cache-key-metadata%*#
!
serialization-format	msgpackZ
Pydantic Transformerý
ú
o0ó
ð	2’
Á

properties²*¯
-
name%*#

titleName

typestring
1
weight'*%

titleWeight

typenumber
K
tagsC*A

items*

typestring

titleTags

typearray

typeobject

titleModel
(
required2
name
tags
weightJ?
=
;
cache-key-metadata%*#
!
serialization-format	msgpackZ
Pydantic Transformer