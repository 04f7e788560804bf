

name

	O'Brien