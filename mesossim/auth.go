package mesossim

import (
	"net/http"

	"github.com/kubemesos/kubemesos/mesossim/internal/httpauth"
)

// FrameworkAuthenticationRealm is Mesos' DEFAULT_HTTP_FRAMEWORK_AUTHENTICATION_REALM, the realm of
// /api/v1/scheduler named in the 401's challenge.
const FrameworkAuthenticationRealm = "mesos-master-scheduler"

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
	p, ok := httpauth.Basic(r.Header.Get("Authorization"), m.cfg.Credentials)
	if !ok {
		unauthorized(w, FrameworkAuthenticationRealm)
		return "", false
	}
	return p, true
}

// ReadCredentials reads the master's --credentials file (httpauth.ReadCredentials).
func ReadCredentials(path string) (map[string]string, error) { return httpauth.ReadCredentials(path) }
