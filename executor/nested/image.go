package nested

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubemesos/kubemesos/executor/imageconfig"
	"github.com/kubemesos/kubemesos/executor/podworker"
)

// ImageConfigs resolves the config of a container's image (imageconfig.Resolver).
type ImageConfigs interface {
	Resolve(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (*v1.Config, error)
}

// EventInspectFailed is the kubelet's reason for an image whose config could not be read.
const EventInspectFailed = "InspectFailed"

// verifyRunAsNonRoot is the kubelet's check (kuberuntime verifyRunAsNonRoot with the image user as
// its runtime reports it: uid from a numeric User, else the user name; no User means root), with
// its messages. An image whose config could not be resolved cannot be verified.
// withImageUser is c with the numeric USER of its image as its runAsUser when neither it nor the pod
// sets one: the container runtime runs a container as its image's user, and Mesos' docker/runtime
// isolator does not ("Container user '…' is not supported yet", runtime.cpp), so the executor names
// it (a host user, as for runAsUser). A user name stays unapplied: the runtime resolves it in the
// image's /etc/passwd, which the executor does not read.
func withImageUser(pod *corev1.Pod, c *corev1.Container, image *v1.Config) *corev1.Container {
	if image == nil {
		return c
	}
	if sc := pod.Spec.SecurityContext; sc != nil && sc.RunAsUser != nil {
		return c
	}
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c
	}
	user, _, _ := strings.Cut(image.User, ":")
	uid, err := strconv.ParseInt(user, 10, 64)
	if err != nil {
		return c
	}
	cc := c.DeepCopy()
	if cc.SecurityContext == nil {
		cc.SecurityContext = &corev1.SecurityContext{}
	}
	cc.SecurityContext.RunAsUser = &uid
	return cc
}

func verifyRunAsNonRoot(pod *corev1.Pod, c *corev1.Container, image *v1.Config, resolveErr error) error {
	var nonRoot *bool
	var runAsUser *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		nonRoot, runAsUser = sc.RunAsNonRoot, sc.RunAsUser
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
		if sc.RunAsUser != nil {
			runAsUser = sc.RunAsUser
		}
	}
	if nonRoot == nil || !*nonRoot {
		return nil
	}
	fail := func(format string, args ...any) error {
		args = append(args, fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID), c.Name)
		return &podworker.CreateError{Reason: podworker.ReasonCreateContainerConfigError, Message: fmt.Sprintf(format+" (pod: %q, container: %s)", args...)}
	}
	if runAsUser != nil {
		if *runAsUser == 0 {
			return fail("container's runAsUser breaks non-root policy")
		}
		return nil
	}
	if image == nil {
		if errors.Is(resolveErr, imageconfig.ErrNoImageProvider) {
			return nil // the agent refuses the image itself (ErrImagePull)
		}
		return fail("container has runAsNonRoot and the user of image %q cannot be verified: %v", c.Image, resolveErr)
	}
	user, _, _ := strings.Cut(image.User, ":")
	if user == "" {
		return fail("container has runAsNonRoot and image will run as root")
	}
	uid, err := strconv.ParseInt(user, 10, 64)
	switch {
	case err != nil:
		return fail("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root", user)
	case uid == 0:
		return fail("container has runAsNonRoot and image will run as root")
	}
	if errs := validation.IsValidUserID(uid); len(errs) > 0 {
		return fail("container has runAsNonRoot and image has an invalid user id (%d). (Must be 1-(%d)): %s", uid, math.MaxInt32, strings.Join(errs, "; "))
	}
	return nil
}

// pullFailures start the failures of Mesos' provisioner, docker store, image pullers and docker URI
// fetcher (provisioner.cpp, docker/store.cpp, image_tar_puller.cpp, registry_puller.cpp,
// uri/fetchers/docker.cpp). The agent answers a launch that failed with any of them with 400 and the
// failure as body (http.cpp _launchContainer: .repair → BadRequest(launch.failure())).
var pullFailures = []string{
	unsupportedImageType,
	"Docker provisioner store only supports Docker images",
	"Failed to parse docker image '",
	"Failed to create a staging directory: ",
	// image_tar_puller.cpp
	"Failed to find archive for image '",
	"Failed to read 'repositories': ",
	"Failed to parse 'repositories': ",
	"Failed to find repository '",
	"Repository '",
	"Failed to find parent layer id for layer '",
	"Layer id '",
	// registry_puller.cpp
	"Failed to get registry port: ",
	"Failed to get registry scheme: ",
	"Failed to read the manifest: ",
	"Failed to parse the manifest",
	"Failed to find manifest schema version: ",
	"'fsLayers' and 'history' have different size in manifest",
	// uri/fetchers/docker.cpp
	"Unexpected HTTP response '",
	"Unexpected HTTP response code from 'curl' for '",
	"Unexpected 'curl' output for '",
	"Failed to perform 'curl' for '",
	"Failed to exec the curl subprocess: ",
	"Unsupported manifest MIME type: ",
	"No Content-Type present",
	"Failed to parse the V2 Schema ",
	"Failed to parse the schema 2 manifest: ",
	"Schema 2 manifest does not exist",
	"No foreign url found from schema 2 manifest",
	"Failed to fetch with foreign urls",
	"Missing 'realm'",
	"Expecting a '401 Unauthorized' response when fetching a blob",
	"Failed to find token in JSON object",
	"Finding token in JSON object failed: ",
	"Failed to parse docker config: ",
}

// unsupportedImageType is the provisioner's failure on an agent without a store for the image type
// (no --image_providers=docker), e.g. "Unsupported container image type: DOCKER" (stringify of the
// enum prints its name: operator<< in src/common/type_utils.cpp).
const unsupportedImageType = "Unsupported container image type: "

// ImageProviderHint is what an agent answering "Unsupported container image type" needs.
const ImageProviderHint = "start the Mesos agent with --image_providers=docker --isolation=...,docker/runtime,filesystem/linux"

// imagePullError turns the agent's answer to LAUNCH_CONTAINER into the kubelet's image pull failure
// when it is one of Mesos' pull failures (nil otherwise).
func imagePullError(image string, err error) *podworker.ImagePullError {
	var apiErr *apierrors.Error
	if !errors.As(err, &apiErr) || !apierrors.CodeMalformedRequest.Matches(apiErr) {
		return nil
	}
	body := strings.TrimSpace(strings.TrimPrefix(apiErr.Error(), apierrors.MsgMalformed+": "))
	for _, prefix := range pullFailures {
		if !strings.HasPrefix(body, prefix) {
			continue
		}
		pe := &podworker.ImagePullError{Image: image, Message: body}
		if prefix == unsupportedImageType {
			pe.NodeMessage = fmt.Sprintf("The Mesos agent cannot provision container images (LAUNCH_CONTAINER of image %q: %s): %s", image, body, ImageProviderHint)
		}
		return pe
	}
	return nil
}

// dockerConfig merges the pod's imagePullSecrets (kubernetes.io/dockerconfigjson and dockercfg data)
// into one docker config, {"auths": {registry: {"auth": base64(user:password)}}}, for
// Image.Docker.config: Mesos' registry puller authenticates with it (the docker fetcher matches each
// key against the registry, and sends its "auth" as Basic credentials), as the kubelet hands the
// runtime the credentials of the pod's pull secrets. Secrets that are missing or carry neither key
// are skipped, as the kubelet skips them; nil when no credential is left.
func dockerConfig(ctx context.Context, pod *corev1.Pod, l Lookup) []byte {
	if l == nil || len(pod.Spec.ImagePullSecrets) == 0 {
		return nil
	}
	type entry struct {
		Auth     string `json:"auth,omitempty"`
		Username string `json:"username,omitempty"`
		Password string `json:"password,omitempty"`
	}
	auths := map[string]entry{}
	add := func(entries map[string]entry) {
		for registry, e := range entries {
			if e.Auth == "" && e.Username != "" {
				e.Auth = base64.StdEncoding.EncodeToString([]byte(e.Username + ":" + e.Password))
			}
			if _, seen := auths[registry]; !seen && e.Auth != "" {
				auths[registry] = entry{Auth: e.Auth} // the first secret naming a registry wins
			}
		}
	}
	for _, ref := range pod.Spec.ImagePullSecrets {
		data, err := l.Secret(ctx, pod.Namespace, ref.Name)
		if err != nil {
			continue
		}
		if b := data[corev1.DockerConfigJsonKey]; len(b) > 0 {
			var cfg struct {
				Auths map[string]entry `json:"auths"`
			}
			if json.Unmarshal(b, &cfg) == nil {
				add(cfg.Auths)
			}
		}
		if b := data[corev1.DockerConfigKey]; len(b) > 0 {
			var cfg map[string]entry
			if json.Unmarshal(b, &cfg) == nil {
				add(cfg)
			}
		}
	}
	if len(auths) == 0 {
		return nil
	}
	b, err := json.Marshal(map[string]map[string]entry{"auths": auths})
	if err != nil {
		return nil
	}
	return b
}
