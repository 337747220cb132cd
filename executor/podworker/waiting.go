package podworker

import (
	"fmt"
	"time"
)

// Kubelet constants of containers that could not be created.
const (
	// PodSyncBackOff is how long the kubelet waits before syncing a pod whose sync failed again
	// (backOffPeriod): a container that could not be created is tried again then.
	PodSyncBackOff = 10 * time.Second
	// ImageBackOff is the first delay between pulls of an image that failed (imageBackOffPeriod); it
	// doubles after every failure up to MaxImageBackOff, per pod and image.
	ImageBackOff    = 10 * time.Second
	MaxImageBackOff = 300 * time.Second
)

// Waiting reasons of containers that could not be created, as the kubelet writes them.
const (
	ReasonErrImagePull               = "ErrImagePull"
	ReasonImagePullBackOff           = "ImagePullBackOff"
	ReasonCreateContainerConfigError = "CreateContainerConfigError"
	ReasonCreateContainerError       = "CreateContainerError"
)

// EventImageProviderMissing is the reason of the Node event recorded when the node cannot provision
// container images at all (ImagePullError.NodeMessage).
const EventImageProviderMissing = "ImageProviderMissing"

// ImagePullError is returned (possibly wrapped) by Runtime.Start when the container's image could not
// be pulled. Nothing ran: the container stays waiting (ErrImagePull, then ImagePullBackOff) and the
// pull is tried again with the kubelet's image back-off, whatever the restart policy.
type ImagePullError struct {
	// Image is the image as the container names it.
	Image string
	// Message is the runtime's explanation (Mesos' launch failure).
	Message string
	// NodeMessage, when set, says what the node lacks to provision any image; it becomes a Warning
	// event on the Node (Config.NodeEvent).
	NodeMessage string
}

func (e *ImagePullError) Error() string {
	return fmt.Sprintf("pulling image %q: %s", e.Image, e.Message)
}

// CreateError is returned (possibly wrapped) by Runtime.Start when the container cannot be created
// from its spec (CreateContainerConfigError, CreateContainerError). Nothing ran: the container stays
// waiting with Reason and Message and is tried again at the next pod sync (PodSyncBackOff).
type CreateError struct {
	Reason  string
	Message string
}

func (e *CreateError) Error() string { return e.Message }

// imageBackOff is the kubelet's flowcontrol.Backoff entry of one pod's image (without jitter).
type imageBackOff struct {
	delay      time.Duration
	lastUpdate time.Time
	prevErr    string // "ErrImagePull: <message>" of the latest failed pull
}

// failed records a failed pull at now, as flowcontrol.Backoff.Next does: the delay starts over after
// 2*MaxImageBackOff without failures, else doubles up to MaxImageBackOff.
func (b *imageBackOff) failed(now time.Time, msg string) {
	if b.delay == 0 || now.Sub(b.lastUpdate) > 2*MaxImageBackOff {
		b.delay = ImageBackOff
	} else {
		b.delay = min(2*b.delay, MaxImageBackOff)
	}
	b.lastUpdate = now
	b.prevErr = ReasonErrImagePull + ": " + msg
}

// inBackOff is flowcontrol.Backoff.IsInBackOffSinceUpdate.
func (b *imageBackOff) inBackOff(now time.Time) bool {
	return b.delay != 0 && now.Sub(b.lastUpdate) < b.delay
}
