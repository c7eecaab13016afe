;; Run by compat/tests/clients.sh on both libraries: the output must match.
;; Four guile threads build and drop lists and vectors at once while the
;; main thread does the same; every result is checked, then joined.
(use-modules (ice-9 threads))
(define (work seed)
  (let loop ((i 0) (sum 0))
    (if (= i 300)
        sum
        (let* ((l (iota 200 seed)) (v (list->vector l)))
          (loop (+ i 1) (+ sum (apply + l) (vector-ref v 199)))))))
(define threads (map (lambda (k) (call-with-new-thread (lambda () (work k)))) '(1 2 3 4)))
(define mine (work 0))
(define results (map join-thread threads))
(gc)
(format #t "threads ~a main ~a\n" results mine)
