
cBa
@/tmp/golden-tables-ur7qtb5c/raw/9acc39dd18788837c08569f4134fda69



code

idcsv