package mesossim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// FrameworkAuthenticationRealm is Mesos' DEFAULT_HTTP_FRAMEWORK_AUTHENTICATION_REALM, the realm of
// /api/v1/scheduler named in the 401's challenge.
const FrameworkAuthenticationRealm = "mesos-master-scheduler"

// basicPrincipal is libprocess' BasicAuthenticator: the principal of a request whose Authorization
// header is "Basic base64(principal:secret)" with a known principal and its secret; ok false otherwise
// (no header, another scheme, bad base64, no or several colons, unknown principal, wrong secret).
func basicPrincipal(r *http.Request, credentials map[string]string) (string, bool) {
	parts := strings.Split(r.Header.Get("Authorization"), " ")
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
	secret, known := credentials[cred[0]]
	if !known || secret != cred[1] {
		return "", false
	}
	return cred[0], true
}

// unauthorized is libprocess' Unauthorized response for a Basic realm.
func unauthorized(w http.ResponseWriter, realm string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
	httpError(w, http.StatusUnauthorized, "401 Unauthorized.")
}

// authenticateFramework answers 401 and returns ok false when the master authenticates HTTP
// frameworks (--authenticate_http_frameworks) and the request has no valid credentials; principal is
// the authenticated one ("" when the master does not authenticate). libprocess authenticates before
// any handler runs, so a bad request without credentials gets 401, not 400 or 405.
func (m *Master) authenticateFramework(w http.ResponseWriter, r *http.Request) (principal string, ok bool) {
	if !m.cfg.AuthenticateHTTPFrameworks {
		return "", true
	}
	p, ok := basicPrincipal(r, m.cfg.Credentials)
	if !ok {
		unauthorized(w, FrameworkAuthenticationRealm)
		return "", false
	}
	return p, true
}

// ReadCredentials reads a Mesos --credentials file: JSON {"credentials": [{"principal", "secret"}]},
// or the older text form, one "principal secret" per line.
func ReadCredentials(path string) (map[string]string, error) {
	b, err := os.ReadFile(strings.TrimPrefix(path, "file://"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var doc struct {
		Credentials []struct {
			Principal string `json:"principal"`
			Secret    string `json:"secret"`
		} `json:"credentials"`
	}
	if err := json.Unmarshal(b, &doc); err == nil {
		for _, c := range doc.Credentials {
			out[c.Principal] = c.Secret
		}
		return out, nil
	}
	for i, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		switch len(fields) {
		case 0:
		case 2:
			out[fields[0]] = fields[1]
		default:
			return nil, fmt.Errorf("%s line %d: expected 'principal secret'", path, i+1)
		}
	}
	return out, nil
}
