package agent

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kubemesos/kubemesos/mesossim/internal/httpauth"
)

// The realms of the agent's HTTP endpoints (src/slave/constants.hpp), named in its 401 challenges.
const (
	ExecutorAuthenticationRealm  = "mesos-agent-executor"  // /api/v1/executor
	ReadwriteAuthenticationRealm = "mesos-agent-readwrite" // /api/v1 (operators and executors alike)
	ReadonlyAuthenticationRealm  = "mesos-agent-readonly"  // /state
)

// The default HTTP authenticators' names (--http_authenticators).
const (
	BasicHTTPAuthenticator = "basic"
	JWTHTTPAuthenticator   = "jwt"
)

// ExecutorTokenEnv carries an executor's authentication token when the agent has --jwt_secret_key.
const ExecutorTokenEnv = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"

// principal is libprocess' authentication::Principal: a value (basic) or claims (a JWT's).
type principal struct {
	value  string
	claims map[string]string
}

// String is libprocess' operator<<: the value alone, else the principal as JSON. Mesos keeps claims in
// a hashmap, whose order is unspecified; they are written sorted here.
func (p *principal) String() string {
	if p.value != "" && len(p.claims) == 0 {
		return p.value
	}
	var b strings.Builder
	b.WriteByte('{')
	if p.value != "" {
		b.WriteString(`"value":` + jsonString(p.value))
		if len(p.claims) > 0 {
			b.WriteByte(',')
		}
	}
	if len(p.claims) > 0 {
		b.WriteString(`"claims":`)
		writeJSONObject(&b, p.claims)
	}
	b.WriteByte('}')
	return b.String()
}

// authenticator is one of libprocess' HTTP authenticators: a principal, or the challenge of its 401.
type authenticator interface {
	scheme() string
	authenticate(r *http.Request) (p *principal, challenge string)
}

// basicAuthenticator is libprocess' BasicAuthenticator.
type basicAuthenticator struct {
	realm       string
	credentials map[string]string
}

func (b basicAuthenticator) scheme() string { return "Basic" }

func (b basicAuthenticator) authenticate(r *http.Request) (*principal, string) {
	header, _ := lastHeader(r.Header, "Authorization")
	p, ok := httpauth.Basic(header, b.credentials)
	if !ok {
		return nil, `Basic realm="` + b.realm + `"`
	}
	return &principal{value: p}, ""
}

// jwtAuthenticator is libprocess' JWTAuthenticator (HS256 tokens signed with --jwt_secret_key).
type jwtAuthenticator struct {
	realm  string
	secret []byte
	now    func() time.Time
}

func (j jwtAuthenticator) scheme() string { return "Bearer" }

func (j jwtAuthenticator) authenticate(r *http.Request) (*principal, string) {
	header, ok := lastHeader(r.Header, "Authorization")
	if !ok {
		// RFC 6750 3.1: a request without credentials gets no error information.
		return nil, `Bearer realm="` + j.realm + `"`
	}
	invalid := func(desc string) (*principal, string) {
		return nil, `Bearer realm="` + j.realm + `", error="invalid_token", error_description="` + desc + `"`
	}
	token := strings.Split(header, " ")
	if len(token) != 2 {
		return invalid("Malformed 'Authorization' header")
	}
	if token[0] != "Bearer" {
		return invalid("Scheme '" + token[0] + "' unsupported")
	}
	payload, err := parseJWT(token[1], j.secret, j.now())
	if err != nil {
		return invalid("Invalid JWT: " + err.Error())
	}
	if len(payload) == 0 {
		return invalid("JWT claims missing")
	}
	p := &principal{claims: make(map[string]string, len(payload))}
	for k, v := range payload {
		// A JSON string's value unquoted, any other value as JSON text (stout's stringify).
		var s string
		if json.Unmarshal(v, &s) == nil {
			p.claims[k] = s
		} else {
			var c bytes.Buffer
			if json.Compact(&c, v) == nil {
				p.claims[k] = c.String()
			} else {
				p.claims[k] = string(v)
			}
		}
	}
	return p, ""
}

// realmAuthenticator is what libprocess runs before every handler of a realm: one authenticator, or
// Mesos' CombinedAuthenticator trying each in order (the first principal wins; otherwise the
// challenges joined by "," and each one's body named by its scheme).
type realmAuthenticator struct {
	authenticators []authenticator
}

// unauthorizedBody is libprocess' Unauthorized() body.
const unauthorizedBody = "401 Unauthorized."

func (ra *realmAuthenticator) authenticate(r *http.Request) (p *principal, challenge, body string) {
	if len(ra.authenticators) == 1 {
		p, c := ra.authenticators[0].authenticate(r)
		return p, c, unauthorizedBody
	}
	var challenges, bodies []string
	for _, a := range ra.authenticators {
		p, c := a.authenticate(r)
		if p != nil {
			return p, "", ""
		}
		challenges = append(challenges, c)
		bodies = append(bodies, `"`+a.scheme()+`" authenticator returned:`+"\n"+unauthorizedBody)
	}
	return nil, strings.Join(challenges, ","), strings.Join(bodies, "\n\n")
}

// httpAuth is the agent's HTTP authentication: realm → authenticator (a realm without one is open),
// and the key executors' tokens are signed with (nil without --jwt_secret_key).
type httpAuth struct {
	realms map[string]*realmAuthenticator
	jwtKey []byte
}

// newHTTPAuth is Slave::initialize's authentication set-up: --http_credentials, --jwt_secret_key,
// then the executor, readonly and readwrite realms, each with --http_authenticators (default basic, or
// basic,jwt with --authenticate_http_executors), failing with Mesos' messages.
func newHTTPAuth(cfg *Config, now func() time.Time) (*httpAuth, error) {
	var credentials map[string]string
	if cfg.HTTPCredentials != "" {
		c, err := httpauth.ReadCredentials(cfg.HTTPCredentials)
		if err != nil {
			return nil, fmt.Errorf("%v (see --http_credentials flag)", err)
		}
		if len(c) == 0 {
			return nil, errors.New("Credentials file must contain at least one credential (see --http_credentials flag)")
		}
		credentials = c
	}
	names := BasicHTTPAuthenticator
	switch {
	case cfg.HTTPAuthenticators != "":
		names = cfg.HTTPAuthenticators
	case cfg.AuthenticateHTTPExecutors:
		names = BasicHTTPAuthenticator + "," + JWTHTTPAuthenticator
	}
	h := &httpAuth{realms: map[string]*realmAuthenticator{}}
	if cfg.JWTSecretKey != "" {
		key, err := os.ReadFile(cfg.JWTSecretKey)
		if err != nil {
			return nil, errors.New("Failed to read the file specified by --jwt_secret_key")
		}
		h.jwtKey = key
	}
	if cfg.AuthenticateHTTPExecutors && h.jwtKey == nil {
		return nil, errors.New("--jwt_secret_key must be specified when --authenticate_http_executors is set to true")
	}
	for _, realm := range []struct {
		name string
		on   bool
	}{
		{ExecutorAuthenticationRealm, cfg.AuthenticateHTTPExecutors},
		{ReadonlyAuthenticationRealm, cfg.AuthenticateHTTPReadonly},
		{ReadwriteAuthenticationRealm, cfg.AuthenticateHTTPReadwrite},
	} {
		if !realm.on {
			continue
		}
		ra := &realmAuthenticator{}
		for _, name := range strings.Split(names, ",") {
			switch name {
			case BasicHTTPAuthenticator:
				if credentials == nil {
					return nil, fmt.Errorf("Failed to create HTTP authenticator module '%s': No credentials provided for the default '%s' HTTP authenticator for realm '%s'", name, BasicHTTPAuthenticator, realm.name)
				}
				ra.authenticators = append(ra.authenticators, basicAuthenticator{realm: realm.name, credentials: credentials})
			case JWTHTTPAuthenticator:
				if h.jwtKey == nil {
					return nil, fmt.Errorf("Failed to create HTTP authenticator module '%s': No secret key provided for the default '%s' HTTP authenticator for realm '%s'", name, JWTHTTPAuthenticator, realm.name)
				}
				ra.authenticators = append(ra.authenticators, jwtAuthenticator{realm: realm.name, secret: h.jwtKey, now: now})
			default:
				// The simulator loads no modules.
				return nil, fmt.Errorf("Failed to create HTTP authenticator module '%s': HTTP authenticator '%s' not found. Check the spelling (compare to '%s') or verify that the authenticator was loaded successfully (see --modules)", name, name, BasicHTTPAuthenticator)
			}
		}
		h.realms[realm.name] = ra
	}
	return h, nil
}

type principalKey struct{}

// authenticated runs h behind realm's authenticator, if the agent has one for it: libprocess answers
// 401 before any handler sees the request, so a malformed request without credentials gets 401.
func (a *Agent) authenticated(realm string, h http.HandlerFunc) http.HandlerFunc {
	ra := a.auth.realms[realm]
	if ra == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		p, challenge, body := ra.authenticate(r)
		if p == nil {
			w.Header().Set("WWW-Authenticate", challenge)
			respondError(w, http.StatusUnauthorized, body)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// requestPrincipal is the principal the request was authenticated as; nil in an open realm.
func requestPrincipal(r *http.Request) *principal {
	p, _ := r.Context().Value(principalKey{}).(*principal)
	return p
}

// executorToken is Slave::generateSecret through JWTSecretGenerator: an HS256 JWT whose claims are
// the executor's framework, executor and container IDs. "" without --jwt_secret_key.
func (a *Agent) executorToken(fid, eid, cid string) string {
	if a.auth.jwtKey == nil {
		return ""
	}
	return createJWT(map[string]string{"fid": fid, "eid": eid, "cid": cid}, a.auth.jwtKey)
}

// verifyExecutorClaims is Mesos' implicit executor authorization of the executor API: the
// authenticated principal's claims must name the call's framework and executor and the executor's
// current container. It returns the 403's text, "" when they do.
func verifyExecutorClaims(p *principal, fid, eid, cid string) string {
	if v, ok := p.claims["fid"]; !ok || v != fid {
		return "Authenticated principal '" + p.String() + "' does not contain an 'fid' claim with the framework ID " + fid + ", which is set in the call"
	}
	if v, ok := p.claims["eid"]; !ok || v != eid {
		return "Authenticated principal '" + p.String() + "' does not contain an 'eid' claim with the executor ID " + eid + ", which is set in the call"
	}
	if v, ok := p.claims["cid"]; !ok || v != cid {
		return "Authenticated principal '" + p.String() + "' does not contain a 'cid' claim with the correct active ContainerID"
	}
	return ""
}

// jwtHeaderHS256 is stringify(JWT::Header{HS256, "JWT"}): stout's JSON objects are ordered maps.
const jwtHeaderHS256 = `{"alg":"HS256","typ":"JWT"}`

var b64url = base64.RawURLEncoding

// createJWT is libprocess' JWT::create(payload, secret) printed by operator<<.
func createJWT(claims map[string]string, secret []byte) string {
	var payload strings.Builder
	writeJSONObject(&payload, claims)
	signing := b64url.EncodeToString([]byte(jwtHeaderHS256)) + "." + b64url.EncodeToString([]byte(payload.String()))
	return signing + "." + b64url.EncodeToString(hmacSHA256(signing, secret))
}

func hmacSHA256(msg string, secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// parseJWT is libprocess' JWT::parse(token, secret): an HS256 token with a valid signature and, if it
// has one, an "exp" not in the past. Its errors are libprocess' texts.
func parseJWT(token string, secret []byte, now time.Time) (map[string]json.RawMessage, error) {
	components := strings.Split(token, ".")
	if len(components) != 3 {
		return nil, fmt.Errorf("Expected 3 components in token, got %d", len(components))
	}
	header, err := decodeJWTComponent(components[0])
	if err != nil {
		return nil, errors.New("Failed to decode token header: " + err.Error())
	}
	if typ, ok := header["typ"]; ok && !isJSONString(typ) {
		return nil, errors.New("Token 'typ' is not a string")
	}
	algRaw, ok := header["alg"]
	if !ok {
		return nil, errors.New("Failed to locate 'alg' in token JSON header")
	}
	var alg string
	if json.Unmarshal(algRaw, &alg) != nil {
		return nil, errors.New("Token 'alg' field is not a string")
	}
	if alg != "none" && alg != "HS256" && alg != "RS256" {
		return nil, errors.New("Unsupported token algorithm: " + alg)
	}
	if _, ok := header["crit"]; ok {
		return nil, errors.New("Token 'crit' field is unsupported")
	}
	if alg != "HS256" {
		return nil, errors.New(`Token 'alg' value "` + alg + `" does not match, expected "HS256"`)
	}
	payload, err := decodeJWTComponent(components[1])
	if err != nil {
		return nil, errors.New("Failed to decode token payload: " + err.Error())
	}
	if expRaw, ok := payload["exp"]; ok {
		var exp float64
		if json.Unmarshal(expRaw, &exp) != nil {
			return nil, errors.New("JSON payload 'exp' field is not a number")
		}
		if secs := now.Unix(); int64(exp) < secs {
			return nil, fmt.Errorf("Token has expired: exp(%d) < now(%d)", int64(exp), secs)
		}
	}
	signature, err := decodeBase64URL(components[2])
	if err != nil {
		return nil, errors.New("Failed to base64url-decode token signature: " + err.Error())
	}
	if subtle.ConstantTimeCompare(hmacSHA256(components[0]+"."+components[1], secret), signature) != 1 {
		return nil, errors.New("Token signature does not match")
	}
	return payload, nil
}

func decodeJWTComponent(s string) (map[string]json.RawMessage, error) {
	b, err := decodeBase64URL(s)
	if err != nil {
		return nil, errors.New("Failed to base64url-decode: " + err.Error())
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return nil, errors.New("Failed to parse into JSON: " + jsonErrorText(err))
	}
	return obj, nil
}

// decodeBase64URL is stout's base64::decode_url_safe, which takes padded and unpadded input.
func decodeBase64URL(s string) ([]byte, error) {
	for _, c := range []byte(strings.TrimRight(s, "=")) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("Invalid character '%c'", c)
		}
	}
	return b64url.DecodeString(strings.TrimRight(s, "="))
}

func jsonErrorText(err error) string {
	if err == nil {
		return "Unexpected JSON type parsed"
	}
	return err.Error()
}

func isJSONString(raw json.RawMessage) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil
}

// writeJSONObject writes a string map as stout's jsonify does: keys sorted (std::map), no spaces.
func writeJSONObject(b *strings.Builder, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(jsonString(k) + ":" + jsonString(m[k]))
	}
	b.WriteByte('}')
}

// jsonString quotes s as rapidjson's Writer (behind stout's jsonify) does: only '"', '\\' and control
// characters are escaped, unlike encoding/json, which also escapes <, >, & and U+2028/9.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				fmt.Fprintf(&b, `\u%04X`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
