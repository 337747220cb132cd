// Package deps pins the root module's dependencies while the packages that use them are being written.
// Remove it once every module here is imported by real code.
package deps

import (
	_ "github.com/gogo/protobuf/proto"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/mesos/mesos-go/api/v1/lib"
	_ "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	_ "github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	_ "github.com/mesos/mesos-go/api/v1/lib/extras/scheduler/controller"
	_ "github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	_ "github.com/mesos/mesos-go/api/v1/lib/httpcli/httpexec"
	_ "github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	_ "github.com/mesos/mesos-go/api/v1/lib/master/calls"
	_ "github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/sirupsen/logrus"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/pflag"
	_ "github.com/spf13/viper"
	_ "golang.org/x/sync/errgroup"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/apimachinery/pkg/apis/meta/v1"
	_ "k8s.io/apiserver/pkg/server/options"
	_ "k8s.io/client-go/informers"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/kubernetes/fake"
	_ "k8s.io/client-go/tools/leaderelection"
	_ "k8s.io/client-go/tools/record"
	_ "k8s.io/client-go/util/workqueue"
	_ "k8s.io/utils/clock/testing"
)
