
£B 
@/tmp/golden-tables-ur7qtb5c/raw/a3b0096f3d50b9b77b61391dde942e23\
Z

id


name


flag

score


when

at


codeparquet