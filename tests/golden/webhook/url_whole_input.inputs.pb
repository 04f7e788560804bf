
7
url0
.
,*http://golden.invalid:59999/whole/path?x=1