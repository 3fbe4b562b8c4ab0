// tinyface_app.h: the firmware's application: set up TFLM, load the gallery, then serve the
// tinyface serial protocol forever (docs/protocol.md). The platform's entry point
// (app_main in platform_esp.cc, main() in native/platform_host.cc) calls tf_app_main().
#ifndef TINYFACE_APP_H
#define TINYFACE_APP_H

// Serve the protocol; returns only when the link is gone (host build). Returns non-zero
// if the model could not be set up (the device still answers PING and INFO then).
int tf_app_main(void);

#endif  // TINYFACE_APP_H
