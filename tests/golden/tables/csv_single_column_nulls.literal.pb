
MBK
@/tmp/golden-tables-ur7qtb5c/raw/95e6f331ead4bea4a168ea42473a6816
csv