
MBK
@/tmp/golden-tables-ur7qtb5c/raw/27752190162d83159213d7e41deed7e0
csv