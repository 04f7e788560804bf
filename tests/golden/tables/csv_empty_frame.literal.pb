
MBK
@/tmp/golden-tables-ur7qtb5c/raw/56cb4be930d8824285839d921e4eed0a
csv