package mesosrole

import "testing"

// The cases and texts of Mesos' RolesTest.Validate (src/tests/role_tests.cpp) and roles.cpp.
func TestValidate(t *testing.T) {
	for _, tc := range []struct{ role, err string }{
		{"*", ""},
		{"foo", ""},
		{"foo/bar", ""},
		{"a/b/c", ""},
		{"foo.bar", ""},
		{"-foo/bar", "Role component '-foo' is invalid because it starts with a dash"},
		{"foo/-bar", "Role component '-bar' is invalid because it starts with a dash"},
		{"", "Role names cannot be the empty string"},
		{"/", "Role '/' cannot start with a slash"},
		{"/foo", "Role '/foo' cannot start with a slash"},
		{"foo/", "Role 'foo/' cannot end with a slash"},
		{"foo//bar", "Role 'foo//bar' cannot contain two adjacent slashes"},
		{".", "Role '.' cannot include '.' as a component"},
		{"..", "Role '..' cannot include '..' as a component"},
		{"foo/./bar", "Role 'foo/./bar' cannot include '.' as a component"},
		{"foo/../bar", "Role 'foo/../bar' cannot include '..' as a component"},
		{"foo/*", "Role 'foo/*' cannot include '*' as a component"},
		{"*/foo", "Role '*/foo' cannot include '*' as a component"},
		{"foo bar", "Role component 'foo bar' is invalid because it contains backspace or whitespace"},
		{"foo\tbar", "Role component 'foo\tbar' is invalid because it contains backspace or whitespace"},
		{"foo\x7f", "Role component 'foo\x7f' is invalid because it contains backspace or whitespace"},
		{"a/b c", "Role component 'b c' is invalid because it contains backspace or whitespace"},
	} {
		err := Validate(tc.role)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err {
			t.Errorf("Validate(%q) = %q, want %q", tc.role, got, tc.err)
		}
	}
}
