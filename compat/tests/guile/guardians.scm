;; Run by compat/tests/clients.sh on both libraries: the output must match.
;; Guardians (finalizers with client data, weak pairs and weak vectors)
;; beside weak tables, then heavy allocation and collections: every object
;; a guardian returns is intact, a reachable one is never returned. (The
;; symbol in a returned object may be uninterned by then: the symbol table
;; is weak, and only unreachable objects referred to it.)
(define (churn) (let loop ((i 0) (acc '())) (if (< i 200000) (loop (+ i 1) (cons i (if (> (length acc) 10) '() acc))) #t)))
(define table (make-weak-key-hash-table))
(let loop ((i 0)) (when (< i 1000) (hashq-set! table (list i) i) (loop (+ i 1))))
(define g (make-guardian))
(define reachable (list 'reachable))
(g reachable)
(let loop ((i 0)) (when (< i 100) (g (list 'garbage i)) (loop (+ i 1))))
(churn) (gc) (gc) (churn) (gc)
(let loop ((x (g)))
  (when x
    (unless (and (pair? x) (symbol? (car x)) (string=? (symbol->string (car x)) "garbage") (integer? (cadr x)))
      (format #t "FAIL: a guardian returned ~s\n" x)
      (exit 1))
    (loop (g))))
(unless (equal? reachable '(reachable)) (display "FAIL: reachable object damaged\n") (exit 1))
(display "guardians ok\n")
