
QBO
@/tmp/golden-tables-ur7qtb5c/raw/806e0813af0b9b74571fc152ed4af39b
	parquet