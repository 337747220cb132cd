package kubeletapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
)

// Where the API server publishes the CA of the client certificates it accepts (and presents), as for
// every delegating server.
const (
	AuthenticationConfigMapNamespace = "kube-system"
	AuthenticationConfigMapName      = "extension-apiserver-authentication"
	clientCAKey                      = "client-ca-file"
)

// RequestAttributes returns the authorization attributes of a request to the kubelet API, as the
// kubelet computes them (with KubeletFineGrainedAuthz): resource nodes, name = the node, verb from the
// HTTP method, subresource from the path: /stats → stats, /metrics → metrics, /logs → log,
// /checkpoint → checkpoint, /pods and /runningpods → pods, /healthz → healthz, /configz → configz,
// anything else (/containerLogs, /exec, /attach, /run, /portForward) → proxy. A request is allowed when
// any of the attributes is: the fine-grained subresources fall back to proxy.
func RequestAttributes(u user.Info, r *http.Request, nodeName string) []authorizer.Attributes {
	verb := ""
	switch r.Method {
	case http.MethodPost:
		verb = "create"
	case http.MethodGet:
		verb = "get"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	}
	path := r.URL.Path
	var subresources []string
	switch {
	case isSubpath(path, "/pods"), isSubpath(path, "/runningpods"):
		subresources = append(subresources, "pods")
	case isSubpath(path, "/healthz"):
		subresources = append(subresources, "healthz")
	case isSubpath(path, "/configz"):
		subresources = append(subresources, "configz")
	}
	switch {
	case isSubpath(path, "/stats"):
		subresources = append(subresources, "stats")
	case isSubpath(path, "/metrics"):
		subresources = append(subresources, "metrics")
	case isSubpath(path, "/logs"):
		subresources = append(subresources, "log")
	case isSubpath(path, "/checkpoint"):
		subresources = append(subresources, "checkpoint")
	default:
		subresources = append(subresources, "proxy")
	}
	attrs := make([]authorizer.Attributes, 0, len(subresources))
	for _, sub := range subresources {
		attrs = append(attrs, authorizer.AttributesRecord{
			User: u, Verb: verb, APIVersion: "v1", Resource: "nodes", Subresource: sub,
			Name: nodeName, ResourceRequest: true, Path: path,
		})
	}
	return attrs
}

func isSubpath(subpath, path string) bool {
	path = strings.TrimSuffix(path, "/")
	return subpath == path || (strings.HasPrefix(subpath, path) && subpath[len(path)] == '/')
}

// withAuth wraps next with authentication (401 when no credential is accepted) and authorization
// (403 when no attribute is allowed, 500 when the authorizer fails), as the kubelet's filter does; 503
// while the node's name is unknown.
func withAuth(next http.Handler, authn authenticator.Request, authz authorizer.Authorizer, nodeName func() string, log logrus.FieldLogger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok, err := authn.AuthenticateRequest(r)
		if err != nil {
			log.WithError(err).Info("unable to authenticate the request")
		}
		if err != nil || !ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		node := nodeName()
		if node == "" {
			http.Error(w, "the node's name is not known yet (the executor has not subscribed to its agent)", http.StatusServiceUnavailable)
			return
		}
		attrs := RequestAttributes(resp.User, r, node)
		var subresources []string
		for _, a := range attrs {
			subresources = append(subresources, a.GetSubresource())
			decision, _, err := authz.Authorize(r.Context(), a)
			if err != nil {
				msg := fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource=%s)",
					a.GetUser().GetName(), a.GetVerb(), a.GetResource(), a.GetSubresource())
				log.WithError(err).Warn(msg)
				http.Error(w, msg, http.StatusInternalServerError)
				return
			}
			if decision == authorizer.DecisionAllow {
				next.ServeHTTP(w, r)
				return
			}
		}
		log.WithFields(logrus.Fields{"user": resp.User.GetName(), "verb": attrs[0].GetVerb(), "subresources": subresources}).Info("forbidden")
		http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=%s, subresource(s)=%v)",
			resp.User.GetName(), attrs[0].GetVerb(), attrs[0].GetResource(), subresources), http.StatusForbidden)
	})
}

// DelegatingOptions tune Delegating. Zero values take the kubelet's defaults.
type DelegatingOptions struct {
	// AuthenticationCacheTTL caches TokenReview answers (default 2 min).
	AuthenticationCacheTTL time.Duration
	// AuthorizationAllowTTL and AuthorizationDenyTTL cache SubjectAccessReview answers (5 min, 30 s).
	AuthorizationAllowTTL, AuthorizationDenyTTL time.Duration
	// WebhookTimeout bounds one TokenReview (default 10 s).
	WebhookTimeout time.Duration
	// ClientCA, when set, replaces the extension-apiserver-authentication ConfigMap as the source of
	// the client CA (tests; a --client-ca-file).
	ClientCA dynamiccertificates.CAContentProvider
}

// Auth is delegated authentication and authorization (what the kubelet does with --authentication-token-webhook,
// --authorization-mode=Webhook and a client CA): client certificates signed by the API server's client
// CA, bearer tokens checked with TokenReview, and every request authorized with a SubjectAccessReview.
type Auth struct {
	Authenticator authenticator.Request
	Authorizer    authorizer.Authorizer
	ca            *dynamiccertificates.ConfigMapCAController
}

// Delegating builds Auth against the API server behind client, reading the client CA from the
// extension-apiserver-authentication ConfigMap (unless opts.ClientCA is set). Run reads the CA and keeps
// it current: until it has read it, client certificates are refused (tokens work). The client needs: create tokenreviews and subjectaccessreviews (ClusterRole
// system:auth-delegator), and get/list/watch of that ConfigMap in kube-system (Role
// extension-apiserver-authentication-reader).
func Delegating(client kubernetes.Interface, opts DelegatingOptions) (*Auth, error) {
	setDefault(&opts.AuthenticationCacheTTL, 2*time.Minute)
	setDefault(&opts.AuthorizationAllowTTL, 5*time.Minute)
	setDefault(&opts.AuthorizationDenyTTL, 30*time.Second)
	setDefault(&opts.WebhookTimeout, 10*time.Second)
	a := &Auth{}
	ca := opts.ClientCA
	if ca == nil {
		c, err := dynamiccertificates.NewDynamicCAFromConfigMapController("client-ca", AuthenticationConfigMapNamespace,
			AuthenticationConfigMapName, clientCAKey, client)
		if err != nil {
			return nil, fmt.Errorf("watching the API server's client CA: %w", err)
		}
		a.ca, ca = c, c
	}
	backoff := webhookBackoff()
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		TokenAccessReviewClient:            client.AuthenticationV1(),
		TokenAccessReviewTimeout:           opts.WebhookTimeout,
		WebhookRetryBackoff:                &backoff,
		CacheTTL:                           opts.AuthenticationCacheTTL,
		ClientCertificateCAContentProvider: ca,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("building the delegating authenticator: %w", err)
	}
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: client.AuthorizationV1(),
		AllowCacheTTL:             opts.AuthorizationAllowTTL,
		DenyCacheTTL:              opts.AuthorizationDenyTTL,
		WebhookRetryBackoff:       &backoff,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("building the delegating authorizer: %w", err)
	}
	a.Authenticator, a.Authorizer = authn, authz
	return a, nil
}

// ClientCAKnown tells whether a client CA was read (client certificates can be verified).
func (a *Auth) ClientCAKnown() bool {
	return a.ca == nil || len(a.ca.CurrentCABundleContent()) > 0
}

// Run reads the client CA from its ConfigMap and keeps it current until ctx ends (returns at once with
// a fixed ClientCA).
func (a *Auth) Run(ctx context.Context) {
	if a.ca != nil {
		a.ca.Run(ctx, 1)
	}
}

// webhookBackoff is the apiserver's DefaultAuthWebhookRetryBackoff.
func webhookBackoff() wait.Backoff {
	return wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}
