;; Run by compat/tests/clients.sh on both libraries: the output must match.
;; Weak-key and weak-value hash tables: an entry goes once its weak part is
;; unreachable (guile keeps those words out of its typed-object bitmaps).
;; Counts are checked, not printed: conservative retention may differ.
(define (check what ok) (unless ok (format #t "FAIL: ~a\n" what) (exit 1)))
(define (churn) (let loop ((i 0) (acc '())) (if (< i 50000) (loop (+ i 1) (cons i (if (> (length acc) 10) '() acc))) #t)))
;; A weak-key table: entries whose key died go away; a live key's stays.
(define table (make-weak-key-hash-table))
(define kept (list 'kept))
(hashq-set! table kept 'value)
(let loop ((i 0)) (when (< i 1000) (hashq-set! table (list i) i) (loop (+ i 1))))
(churn) (gc) (gc)
(check "live key kept" (eq? (hashq-ref table kept) 'value))
(define left (hash-fold (lambda (k v n) (+ n 1)) 0 table))
(check "dead keys dropped" (< left 500))
;; A weak-value table.
(define vtable (make-weak-value-hash-table))
(define live-value (list 'live))
(hashq-set! vtable 'a live-value)
(let loop ((i 0)) (when (< i 1000) (hashq-set! vtable i (list i)) (loop (+ i 1))))
(churn) (gc) (gc)
(check "live value kept" (eq? (hashq-ref vtable 'a) live-value))
(define vleft (hash-fold (lambda (k v n) (+ n 1)) 0 vtable))
(check "dead values dropped" (< vleft 500))
(display "weak ok\n")
