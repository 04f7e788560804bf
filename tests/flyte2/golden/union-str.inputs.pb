
!
x
J

	
three	Z
str