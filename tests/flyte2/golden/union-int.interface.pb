
!

x
R
	Z
int
	Z
str"
 
o0
R
	Z
int
	Z
str