//! pam_twofactor.so
