package charts

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The chart hands an https master's CA bundle and client certificate to the framework from a Secret:
// --mesos-ca-file, --mesos-cert-file and --mesos-key-file name the files of the Secret's keys, mounted
// read-only where they say; --mesos-user is FrameworkInfo.user. Without a TLS Secret there is neither
// volume nor flag.
func TestChartMesosTLSAndUser(t *testing.T) {
	const dir = "/etc/kubemesos/mesos-tls"
	for _, tc := range []struct {
		name          string
		values        string
		ca, cert, key string
		items         []corev1.KeyToPath
		wantVolume    bool
		wantUser      string
	}{
		{name: "defaults", wantUser: "root"},
		{
			name:       "CA bundle only",
			values:     `mesos: {master: "https://m.example.com:5050", tls: {secretName: mesos-ca}, user: nobody}`,
			ca:         dir + "/ca.crt",
			items:      []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
			wantVolume: true,
			wantUser:   "nobody",
		},
		{
			name:       "CA bundle and client certificate",
			values:     `mesos: {master: "https://m.example.com:5050", tls: {secretName: mesos-tls, caKey: ca.pem, certKey: tls.crt, keyKey: tls.key}}`,
			ca:         dir + "/ca.pem",
			cert:       dir + "/tls.crt",
			key:        dir + "/tls.key",
			items:      []corev1.KeyToPath{{Key: "ca.pem", Path: "ca.pem"}, {Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}},
			wantVolume: true,
			wantUser:   "root",
		},
		{
			name:       "client certificate, the system's roots",
			values:     `mesos: {master: "https://m.example.com:5050", tls: {secretName: mesos-tls, caKey: "", certKey: tls.crt, keyKey: tls.key}}`,
			cert:       dir + "/tls.crt",
			key:        dir + "/tls.key",
			items:      []corev1.KeyToPath{{Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}},
			wantVolume: true,
			wantUser:   "root",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, valuesYAML(t, tc.values))
			c := chartFrameworkConfigFrom(t, r)
			type files struct{ CA, Cert, Key, User string }
			if diff := cmp.Diff(files{tc.ca, tc.cert, tc.key, tc.wantUser}, files{c.MesosCAFile, c.MesosCertFile, c.MesosKeyFile, c.MesosUser}); diff != "" {
				t.Errorf("framework's --mesos-ca-file, --mesos-cert-file, --mesos-key-file, --mesos-user (-want +got):\n%s", diff)
			}
			spec := named[*appsv1.Deployment](t, r, testFullname).Spec.Template.Spec
			var vol *corev1.Volume
			for i := range spec.Volumes {
				if spec.Volumes[i].Name == "mesos-tls" {
					vol = &spec.Volumes[i]
				}
			}
			var mount *corev1.VolumeMount
			for i, m := range spec.Containers[0].VolumeMounts {
				if m.Name == "mesos-tls" {
					mount = &spec.Containers[0].VolumeMounts[i]
				}
			}
			if (vol != nil) != tc.wantVolume || (mount != nil) != tc.wantVolume {
				t.Fatalf("TLS volume %+v mount %+v, want them: %v", vol, mount, tc.wantVolume)
			}
			if !tc.wantVolume {
				return
			}
			if vol.Secret == nil || vol.Secret.SecretName == "" {
				t.Fatalf("TLS volume %+v is not a Secret", vol)
			}
			if diff := cmp.Diff(tc.items, vol.Secret.Items); diff != "" {
				t.Errorf("Secret items (-want +got):\n%s", diff)
			}
			if mount.MountPath != dir || !mount.ReadOnly {
				t.Errorf("TLS mount %+v, want %s read-only", mount, dir)
			}
		})
	}
}

// The Universe package does the same with DC/OS secrets mounted in the sandbox; every combination of
// the app's file secrets renders a valid app with one volume each.
func TestUniverseMesosTLSAndUser(t *testing.T) {
	c := marathonFrameworkConfig(t, `{"mesos": {"master": "https://leader.mesos:5050", "ca_secret": "km/ca", "cert_secret": "km/cert", "key_secret": "km/key", "user": "nobody"}}`)
	type files struct{ CA, Cert, Key, User string }
	want := files{"/mnt/mesos/sandbox/mesos-ca.pem", "/mnt/mesos/sandbox/mesos-cert.pem", "/mnt/mesos/sandbox/mesos-key.pem", "nobody"}
	if diff := cmp.Diff(want, files{c.MesosCAFile, c.MesosCertFile, c.MesosKeyFile, c.MesosUser}); diff != "" {
		t.Errorf("framework's --mesos-ca-file, --mesos-cert-file, --mesos-key-file, --mesos-user (-want +got):\n%s", diff)
	}
	for mask := 0; mask < 16; mask++ {
		kubeconfig := `"kubernetes": {"kubeconfig_secret": "", "kubeconfig_uri": "https://c.example.com/kubeconfig"}`
		mesos := `"master": "https://leader.mesos:5050"`
		n := 0
		if mask&1 != 0 {
			kubeconfig, n = `"kubernetes": {"kubeconfig_secret": "k"}`, n+1
		}
		if mask&2 != 0 {
			mesos, n = mesos+`, "principal": "p", "secret_name": "s"`, n+1
		}
		if mask&4 != 0 {
			mesos, n = mesos+`, "ca_secret": "ca"`, n+1
		}
		if mask&8 != 0 {
			mesos, n = mesos+`, "cert_secret": "cert", "key_secret": "key"`, n+2
		}
		opts := `{` + kubeconfig + `, "mesos": {` + mesos + `}}`
		obj, text, err := loadUniverse(t).RenderMarathon(options(t, opts))
		if err != nil {
			t.Fatalf("%s: %v\n%s", opts, err, text)
		}
		app := validApp(t, obj)
		if len(app.Container.Volumes) != n || len(app.Secrets) != n {
			t.Errorf("%s: %d volumes and %d secrets, want %d", opts, len(app.Container.Volumes), len(app.Secrets), n)
		}
	}
}
