// Package mesossim is a protocol-faithful, in-process simulation of an Apache Mesos 1.x master (scheduler,
// operator and admin HTTP APIs, allocation, failover, faults) driving simulated agents, so that the
// framework and executor can be developed and tested where no real Mesos can be installed.
package mesossim
