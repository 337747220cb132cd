// Package httpauth is what the simulated master and agent share of libprocess' HTTP authentication:
// the Basic authenticator's check and Mesos' credentials file.
package httpauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Basic is libprocess' BasicAuthenticator on an Authorization header's value: the principal of
// "Basic base64(principal:secret)" with a known principal and its secret; ok false otherwise (no
// header, another scheme, bad base64, no or several colons, unknown principal, wrong secret).
func Basic(header string, credentials map[string]string) (principal string, ok bool) {
	parts := strings.Split(header, " ")
	if len(parts) != 2 || parts[0] != "Basic" {
		return "", false
	}
	decoded, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	cred := strings.Split(string(decoded), ":")
	if len(cred) != 2 {
		return "", false
	}
	if secret, known := credentials[cred[0]]; !known || secret != cred[1] {
		return "", false
	}
	return cred[0], true
}

// ReadCredentials reads a Mesos credentials file (--credentials, --http_credentials) as Mesos'
// credentials::read: JSON {"credentials": [{"principal", "secret"}]}, or the older text form, one
// "principal secret" a line; principal → secret.
func ReadCredentials(path string) (map[string]string, error) {
	path = strings.TrimPrefix(path, "file://")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("Failed to read credentials file '%s': %v", path, err)
	}
	out := map[string]string{}
	var doc struct {
		Credentials []struct {
			Principal string `json:"principal"`
			Secret    string `json:"secret"`
		} `json:"credentials"`
	}
	if json.Unmarshal(b, &doc) == nil {
		for _, c := range doc.Credentials {
			out[c.Principal] = c.Secret
		}
		return out, nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, errors.New("Invalid credential format at line " + strconv.Quote(line))
		}
		out[fields[0]] = fields[1]
	}
	return out, nil
}
