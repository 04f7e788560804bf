
!
x

héllo {{ .inputs.x }}