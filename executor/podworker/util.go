package podworker

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// metaTime truncates to seconds, the precision the API server stores.
func metaTime(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second)) }

func ptrTime(t time.Time) *metav1.Time {
	m := metaTime(t)
	return &m
}

func ptrBool(b bool) *bool { return &b }
