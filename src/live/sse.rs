//! Server-Sent Events for the live Mensajes table (filled in below).
