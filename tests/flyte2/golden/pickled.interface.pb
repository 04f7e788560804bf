
r
p
xk
i21
/
python_class_name<class 'v2cases.Opaque'>R4
*
PythonPickleZ
FlytePickle
Z
FlytePickles
q
o0k
i21
/
python_class_name<class 'v2cases.Opaque'>R4
*
PythonPickleZ
FlytePickle
Z
FlytePickle