package framework

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the framework's Prometheus metrics, registered on their own registry (served at /metrics).
type metrics struct {
	registry          *prometheus.Registry
	offersReceived    prometheus.Counter
	offersAccepted    prometheus.Counter
	offersDeclined    prometheus.Counter
	offersRescinded   prometheus.Counter
	podsLaunched      prometheus.Counter
	podsUnschedulable prometheus.Counter
	schedulingLatency prometheus.Histogram
	pendingPods       prometheus.Gauge
	subscribed        prometheus.Gauge
	statusUpdates     *prometheus.CounterVec
	nodes             *prometheus.GaugeVec
}

// States of the nodes gauge.
const (
	nodeStateReady    = "ready"
	nodeStateNotReady = "not_ready"
	nodeStateConflict = "hostname_conflict"
)

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		offersReceived: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kubemesos", Name: "offers_received_total",
			Help: "Mesos offers received."}),
		offersAccepted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kubemesos", Name: "offers_accepted_total",
			Help: "Mesos offers used by an ACCEPT."}),
		offersDeclined: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kubemesos", Name: "offers_declined_total",
			Help: "Mesos offers declined (unusable or held past --offer-hold)."}),
		offersRescinded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kubemesos", Name: "offers_rescinded_total",
			Help: "Mesos offers rescinded by the master."}),
		podsLaunched: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kubemesos", Name: "pods_launched_total",
			Help: "Pods launched as Mesos tasks."}),
		podsUnschedulable: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kubemesos", Name: "pods_unschedulable_total",
			Help: "Placement attempts that found no agent for a pod."}),
		schedulingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "kubemesos", Name: "scheduling_latency_seconds",
			Help:    "Time from a pod's creation to its launch as a Mesos task.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)}),
		pendingPods: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kubemesos", Name: "pending_pods",
			Help: "Pods waiting for placement."}),
		subscribed: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kubemesos", Name: "mesos_subscribed",
			Help: "1 while subscribed to the Mesos master."}),
		statusUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kubemesos", Name: "task_status_updates_total",
			Help: "Mesos task status updates received, by state."}, []string{"state"}),
		nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "kubemesos", Name: "nodes",
			Help: "The framework's agents by the state of their Node: ready, not_ready, or hostname_conflict (the name is another owner's Node)."}, []string{"state"}),
	}
	m.registry.MustRegister(m.offersReceived, m.offersAccepted, m.offersDeclined, m.offersRescinded,
		m.podsLaunched, m.podsUnschedulable, m.schedulingLatency, m.pendingPods, m.subscribed, m.statusUpdates, m.nodes,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
