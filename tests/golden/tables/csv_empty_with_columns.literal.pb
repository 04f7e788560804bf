
_B]
@/tmp/golden-tables-ur7qtb5c/raw/02195852f1746b2ec698b8926175441e


a

bcsv