9


"	element-3


"	element-1


"	element-2