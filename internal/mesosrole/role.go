// Package mesosrole validates Mesos role names exactly as Mesos does (src/common/roles.cpp,
// mesos::roles::validate), with Mesos' error texts. The simulated master and the framework share it,
// so a role the framework accepts is one a real master accepts.
package mesosrole

import (
	"errors"
	"strings"
)

// invalidCharacters are roles.cpp's INVALID_CHARACTERS: tab, the line breaks, space and DEL.
const invalidCharacters = "\x09\x0a\x0b\x0c\x0d\x20\x7f"

// Validate is mesos::roles::validate: nil for a valid role name ("*" included), else Mesos' message.
func Validate(role string) error {
	if role == "*" {
		return nil
	}
	if strings.HasPrefix(role, "/") {
		return errors.New("Role '" + role + "' cannot start with a slash")
	}
	if strings.HasSuffix(role, "/") {
		return errors.New("Role '" + role + "' cannot end with a slash")
	}
	if strings.Contains(role, "//") {
		return errors.New("Role '" + role + "' cannot contain two adjacent slashes")
	}
	// strings::tokenize drops empty tokens: only the empty role has no component left.
	var components []string
	for _, c := range strings.Split(role, "/") {
		if c != "" {
			components = append(components, c)
		}
	}
	if len(components) == 0 {
		return errors.New("Role names cannot be the empty string")
	}
	for _, c := range components {
		switch {
		case c == ".":
			return errors.New("Role '" + role + "' cannot include '.' as a component")
		case c == "..":
			return errors.New("Role '" + role + "' cannot include '..' as a component")
		case c == "*":
			return errors.New("Role '" + role + "' cannot include '*' as a component")
		case strings.HasPrefix(c, "-"):
			return errors.New("Role component '" + c + "' is invalid because it starts with a dash")
		case strings.ContainsAny(c, invalidCharacters):
			return errors.New("Role component '" + c + "' is invalid because it contains backspace or whitespace")
		}
	}
	return nil
}
