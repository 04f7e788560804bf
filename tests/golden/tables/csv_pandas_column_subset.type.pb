B


code

idcsv