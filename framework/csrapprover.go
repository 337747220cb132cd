package framework

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// ExecutorBootstrapPermission is what the executors' bootstrap credential (their
// --bootstrap-kubeconfig) must be allowed for the framework to approve the kubelet client certificates
// it requests: create on the synthetic subresource certificatesigningrequests/kubemesos-executor, as
// kube-controller-manager's approver asks for certificatesigningrequests/nodeclient (which kubemesos'
// executors must not have: kcm would approve their CSRs for any Node). Grant it with CSR create, get,
// list and watch (ClusterRole system:node-bootstrapper's) to the bootstrap identity.
var ExecutorBootstrapPermission = authorizationv1.ResourceAttributes{
	Group: certificatesv1.GroupName, Resource: "certificatesigningrequests", Subresource: "kubemesos-executor", Verb: "create", Version: "*",
}

// ExecutorBootstrapGroup is the group the e2e control plane and the documentation give the executors'
// bootstrap credential (a bootstrap token's auth-extra-groups may carry it: it matches
// system:bootstrappers:*).
const ExecutorBootstrapGroup = "system:bootstrappers:kubemesos"

// The executor's certificate is the kubelet's (executor/identity).
const (
	nodeUserPrefix = "system:node:"
	nodesGroup     = "system:nodes"
)

// Reasons of the framework's CSR conditions.
const (
	CSRReasonApproved       = "AutoApproved" // kube-controller-manager's reason for the kubelet's
	CSRReasonNotKubelet     = "NotKubeletClientCertificate"
	CSRReasonNotRequester   = "RequesterNotExecutor"
	CSRReasonUnknownNode    = "NodeWithoutMesosAgent"
	CSRReasonInvalidRequest = "InvalidRequest"
)

// csrUnknownNodeGrace is how long a CSR for a Node no known agent stands for stays pending before it
// is denied: a framework that just started learns its agents from offers and GET_AGENTS within it.
const csrUnknownNodeGrace = 30 * time.Second

// csrApprover approves the executors' client certificates as kube-controller-manager's csrapproving
// controller approves the kubelet's, but only for Nodes that stand for Mesos agents the framework has:
// a CSR of signer kubernetes.io/kube-apiserver-client-kubelet whose request is exactly a kubelet
// client certificate's (pkg/apis/certificates.ValidateKubeletClientCSR) for system:node:<name>,
// requested by an identity allowed ExecutorBootstrapPermission (a SubjectAccessReview, as kcm's
// approver does) or by that Node itself (renewal, kcm's "selfnodeclient"). Every other CSR of that
// signer is denied with a reason, since no one else should get a Node's identity. Other signers are
// left alone.
type csrApprover struct {
	client kubernetes.Interface
	// agentOf returns the ID of the agent whose Node is name, "" if none (nodeController.AgentOfHostname).
	agentOf func(node string) string
	// bootstrapper tells whether the CSR's requester has ExecutorBootstrapPermission.
	bootstrapper func(context.Context, *certificatesv1.CertificateSigningRequest) (bool, error)
	clock        clock.PassiveClock
	grace        time.Duration
	log          logrus.FieldLogger
}

func newCSRApprover(client kubernetes.Interface, agentOf func(string) string, clk clock.PassiveClock, log logrus.FieldLogger) *csrApprover {
	a := &csrApprover{client: client, agentOf: agentOf, clock: clk, grace: csrUnknownNodeGrace, log: log}
	a.bootstrapper = a.authorized
	return a
}

// authorized asks the API server whether the CSR's requester has ExecutorBootstrapPermission
// (kcm's sarApprover.authorize).
func (a *csrApprover) authorized(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range csr.Spec.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	attrs := ExecutorBootstrapPermission
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: csr.Spec.Username, UID: csr.Spec.UID, Groups: csr.Spec.Groups, Extra: extra, ResourceAttributes: &attrs,
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SubjectAccessReview of %s: %w", csr.Spec.Username, err)
	}
	return sar.Status.Allowed, nil
}

// csrVerdict is what the approver does with a CSR.
type csrVerdict int

const (
	csrIgnore csrVerdict = iota // not ours, or already decided
	csrApprove
	csrDeny
	csrWait // look again later
)

// decide judges a CSR; reason and message go to its condition.
func (a *csrApprover) decide(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) (v csrVerdict, reason, message string, err error) {
	if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName || len(csr.Status.Certificate) > 0 {
		return csrIgnore, "", "", nil
	}
	for _, c := range csr.Status.Conditions {
		if (c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied) && c.Status != corev1.ConditionFalse {
			return csrIgnore, "", "", nil
		}
	}
	req, err := parseCSR(csr.Spec.Request)
	if err != nil {
		return csrDeny, CSRReasonInvalidRequest, err.Error(), nil
	}
	if err := validateKubeletClientCSR(req, csr.Spec.Usages); err != nil {
		return csrDeny, CSRReasonNotKubelet, "not a kubelet client certificate request: " + err.Error(), nil
	}
	cn := req.Subject.CommonName
	if self := csr.Spec.Username == cn && slices.Contains(csr.Spec.Groups, nodesGroup); !self {
		ok, err := a.bootstrapper(ctx, csr)
		if err != nil {
			return csrIgnore, "", "", err
		}
		if !ok {
			p := ExecutorBootstrapPermission
			return csrDeny, CSRReasonNotRequester, fmt.Sprintf("requested by %s, neither a kubemesos executor's bootstrap credential (allowed %s %s/%s) nor %s itself",
				csr.Spec.Username, p.Verb, p.Resource, p.Subresource, cn), nil
		}
	}
	node := strings.TrimPrefix(cn, nodeUserPrefix)
	agent := a.agentOf(node)
	if agent == "" {
		if a.clock.Since(csr.CreationTimestamp.Time) < a.grace {
			return csrWait, "", "", nil
		}
		return csrDeny, CSRReasonUnknownNode, fmt.Sprintf("Node %s does not stand for a Mesos agent of this framework", node), nil
	}
	return csrApprove, CSRReasonApproved, fmt.Sprintf("Auto approving kubelet client certificate of Node %s (Mesos agent %s) for its kubemesos executor.", node, agent), nil
}

func parseCSR(pemBytes []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("PEM block type must be CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate request: %w", err)
	}
	return req, nil
}

// validateKubeletClientCSR is k8s.io/kubernetes pkg/apis/certificates.ValidateKubeletClientCSR (v1.37),
// with its texts: organization exactly system:nodes, no SANs, CN system:node:*, usages exactly
// {digital signature, client auth} (plus key encipherment for RSA keys).
func validateKubeletClientCSR(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) error {
	if !slices.Equal(req.Subject.Organization, []string{nodesGroup}) {
		return errors.New("subject organization is not system:nodes")
	}
	switch {
	case len(req.DNSNames) > 0:
		return errors.New("DNS subjectAltNames are not allowed")
	case len(req.EmailAddresses) > 0:
		return errors.New("Email subjectAltNames are not allowed")
	case len(req.IPAddresses) > 0:
		return errors.New("IP subjectAltNames are not allowed")
	case len(req.URIs) > 0:
		return errors.New("URI subjectAltNames are not allowed")
	}
	if !strings.HasPrefix(req.Subject.CommonName, nodeUserPrefix) || req.Subject.CommonName == nodeUserPrefix {
		return errors.New("subject common name does not begin with system:node:")
	}
	set := map[certificatesv1.KeyUsage]bool{}
	for _, u := range usages {
		set[u] = true
	}
	noRSA := len(set) == 2 && set[certificatesv1.UsageDigitalSignature] && set[certificatesv1.UsageClientAuth]
	rsa := len(set) == 3 && set[certificatesv1.UsageDigitalSignature] && set[certificatesv1.UsageClientAuth] && set[certificatesv1.UsageKeyEncipherment]
	if !noRSA && !rsa {
		return fmt.Errorf("usages did not match [%s %s %s]", certificatesv1.UsageClientAuth, certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment)
	}
	return nil
}

// Run approves and denies until ctx ends. It watches only the kubelet client signer's CSRs.
func (a *csrApprover) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(a.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.signerName", certificatesv1.KubeAPIServerClientKubeletSignerName).String()
	}))
	inf := factory.Certificates().V1().CertificateSigningRequests()
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "csrapprover"})
	defer queue.ShutDown()
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return fmt.Errorf("watching CertificateSigningRequests: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return nil // ctx ended
	}
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	lister := inf.Lister()
	for {
		name, quit := queue.Get()
		if quit {
			return nil
		}
		csr, err := lister.Get(name)
		switch {
		case apierrors.IsNotFound(err):
			queue.Forget(name)
		case err != nil:
			queue.AddRateLimited(name)
		default:
			again, err := a.handle(ctx, csr)
			switch {
			case err != nil:
				a.log.WithError(err).WithField("csr", name).Warn("deciding a CertificateSigningRequest (retrying)")
				queue.AddRateLimited(name)
			case again > 0:
				queue.Forget(name)
				queue.AddAfter(name, again)
			default:
				queue.Forget(name)
			}
		}
		queue.Done(name)
	}
}

// handle decides one CSR and writes the decision; again > 0 asks to look at it again after that long.
func (a *csrApprover) handle(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) (again time.Duration, err error) {
	v, reason, msg, err := a.decide(ctx, csr)
	if err != nil {
		return 0, err
	}
	var cond certificatesv1.CertificateSigningRequestCondition
	switch v {
	case csrIgnore:
		return 0, nil
	case csrWait:
		return max(a.grace-a.clock.Since(csr.CreationTimestamp.Time), time.Second), nil
	case csrApprove:
		cond = certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateApproved}
	case csrDeny:
		cond = certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateDenied}
	}
	now := metav1.NewTime(a.clock.Now())
	cond.Status, cond.Reason, cond.Message, cond.LastUpdateTime, cond.LastTransitionTime = corev1.ConditionTrue, reason, msg, now, now
	csr = csr.DeepCopy()
	csr.Status.Conditions = append(csr.Status.Conditions, cond)
	if _, err := a.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("updating approval of CSR %s: %w", csr.Name, err)
	}
	a.log.WithFields(logrus.Fields{"csr": csr.Name, "requester": csr.Spec.Username, "decision": cond.Type, "reason": reason, "message": msg}).Info("CertificateSigningRequest decided")
	return 0, nil
}
